// Writing to stdout/stderr without losing output when the process ends:
// callers set process.exitCode and return instead of calling process.exit.
import { programName } from './program.js'

export function out (text: string): void {
  process.stdout.write(text)
}

export function err (text: string): void {
  process.stderr.write(text)
}

/** "prog: message\n" on stderr, as error_report() prints it. */
export function report (message: string): void {
  process.stderr.write(`${programName()}: ${message}\n`)
}
