// Writing to stdout/stderr. Callers set process.exitCode and return instead
// of calling process.exit, so nothing is cut short.
//
// Output goes to the file descriptors with write(2), synchronously, not
// through process.stdout/stderr: Node builds those on first use, and for a
// file or pipe that loads its whole streams machinery (~20 modules, 3-5 ms
// of every short command such as `info`). process.stdout is synchronous on
// Linux for files, pipes and terminals too, so the order of output is the
// same. Tests running the CLI in-process capture output with captureOutput().
import { writeSync } from 'node:fs'
import { programName } from './program.js'

type Sink = (text: string) => void

let capture: { out: Sink, err: Sink } | null = null

/** Send what out()/err()/report() print to `sinks` until the returned function is called. */
export function captureOutput (sinks: { out: Sink, err: Sink }): () => void {
  capture = sinks
  return () => { capture = null }
}

/** Sleep for `ms` without returning to the event loop (a full non-blocking pipe). */
function pause (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function writeAll (fd: number, text: string): void {
  let buf = Buffer.from(text)
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf))
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'EAGAIN') { pause(1); continue }
      // the reader went away (`qimg map ... | head`): qemu-img dies of SIGPIPE
      // there; Node ignores that signal, so end the same way, quietly
      if (code === 'EPIPE') process.exit(128 + 13)
      // no such descriptor (started with it closed): there is nowhere to write
      if (code === 'EBADF') return
      throw e
    }
  }
}

export function out (text: string): void {
  if (capture) capture.out(text)
  else writeAll(1, text)
}

export function err (text: string): void {
  if (capture) capture.err(text)
  else writeAll(2, text)
}

/** "prog: message\n" on stderr, as error_report() prints it. */
export function report (message: string): void {
  err(`${programName()}: ${message}\n`)
}
