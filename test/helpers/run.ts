// Running qimg (as "qemu-img", so messages compare directly) and the real
// qemu-img/qemu-io in tests.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const QIMG_BIN = path.join(ROOT, 'bin/qemu-img.js')

export interface RunResult { stdout: string, stderr: string, code: number }

export interface RunOptions { cwd?: string, input?: string | Buffer, env?: NodeJS.ProcessEnv, timeout?: number }

/**
 * The environment commands run in. Without NODE_EXTRA_CA_CERTS, as the bins'
 * shebang runs qimg: Node parses that certificate file at every start-up
 * (~40 ms here), and qimg makes no TLS connections.
 */
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', TZ: 'UTC' }
delete BASE_ENV.NODE_EXTRA_CA_CERTS

function run (cmd: string, args: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    env: opts.env ?? BASE_ENV,
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    timeout: opts.timeout ?? 120_000,
  })
  if (r.error) throw r.error
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? (r.signal ? 128 : 1) }
}

/**
 * The command that runs node with `nodeArgs` (flags, script, its
 * arguments) as a user's shell would. tap's process tracking
 * (@tapjs/processinfo) puts its ESM loader into NODE_OPTIONS of every child
 * a test spawns: in qimg that starts a module-hooks thread (~160 ms more
 * per start), and its main thread waits on that thread for ever if the
 * thread cannot start (seen when a test's directory was removed under a
 * running qimg). `env -u` takes it out again.
 */
export function nodeCommand (nodeArgs: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', process.execPath, ...nodeArgs]]
}

/** nodeCommand for a shell command line */
export const NODE_IN_SHELL = `env -u NODE_OPTIONS "${process.execPath}"`

/** qimg, invoked as qemu-img (bin/qemu-img.js) */
export function qimg (args: string[], opts?: RunOptions): RunResult {
  return run(...nodeCommand([QIMG_BIN, ...args]), opts)
}

/**
 * qemu-img, when it makes a LUKS key slot, times its PBKDF to choose the
 * iteration count, and on a busy machine that now and then gives up with
 * this (failing the command). It is the oracle failing, not a result to
 * compare with: such runs are made again, after a pause that grows (the
 * failures come in bursts: 20 quick tries in a row all failed once, on a
 * machine that failed 1 run in 5), for up to a minute.
 */
const CALIBRATION_FAILURE = 'Unable to get accurate CPU usage'
const CALIBRATION_PATIENCE_MS = 60_000

/** the real qemu-img (run again while its PBKDF calibration fails) */
export function qemuImg (args: string[], opts?: RunOptions): RunResult {
  const end = Date.now() + CALIBRATION_PATIENCE_MS
  for (let pause = 50; ; pause = Math.min(2 * pause, 2000)) {
    const r = run('qemu-img', args, opts)
    if (!r.stderr.includes(CALIBRATION_FAILURE) || Date.now() > end) return r
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause)
  }
}

/** the real qemu-io (e.g. qemuIo(['-c', 'write -P 1 0 64k'], 'f.qcow2')) */
export function qemuIo (commands: string[], file: string, extra: string[] = [], opts?: RunOptions): RunResult {
  const args = [...extra]
  for (const c of commands) args.push('-c', c)
  args.push(file)
  return run('qemu-io', args, opts)
}

/** run the real qemu-img and fail loudly when it fails (for building fixtures) */
export function qemuImgOk (args: string[], opts?: RunOptions): string {
  const r = qemuImg(args, opts)
  if (r.code !== 0) throw new Error(`qemu-img ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

export function qemuIoOk (commands: string[], file: string, extra: string[] = [], opts?: RunOptions): string {
  const r = qemuIo(commands, file, extra, opts)
  if (r.code !== 0 || /error|failed/i.test(r.stderr + r.stdout)) {
    throw new Error(`qemu-io ${[...extra, ...commands].join(' ')} ${file} failed: ${r.stderr}${r.stdout}`)
  }
  return r.stdout
}
