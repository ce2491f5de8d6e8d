// Real FUSE mounts in tests. The server always runs in its own process
// (`qimg mount` detaches it), and every read or write of a mount happens in
// a child process too, so a misbehaving server can never hang the test
// process. Teardown escalates from `qimg umount` to a lazy unmount to a
// fusectl abort, so a failing test never leaves the machine wedged.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync, spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { ROOT, nodeCommand, type RunResult } from './run.js'
import { findMount, readPidFile } from '../../fuse/runtime.js'

export const QIMG_RUN = path.join(ROOT, 'bin/run.js')
const ENV = { ...process.env, LC_ALL: 'C', TZ: 'UTC' }

/** run `qimg ARGS` (as qimg, so mount/umount messages read "qimg: ...") */
export function qimgCli (args: string[], timeout = 120_000): RunResult {
  const r = spawnSync(...nodeCommand([QIMG_RUN, ...args]), { env: ENV, encoding: 'utf8', timeout })
  if (r.error) throw r.error
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? 128 }
}

/** run a command (in a child process), failing the test loudly when it fails */
export function sh (cmd: string, args: string[], opts: { input?: string, cwd?: string, timeout?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, { env: ENV, encoding: 'utf8', input: opts.input, cwd: opts.cwd, timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? 128 }
}

export function isMounted (mountPoint: string): boolean {
  return findMount(path.resolve(mountPoint)) !== undefined
}

/** the server process of a mount (from its pid file) */
export function serverPid (mountPoint: string): number | undefined {
  return readPidFile(path.resolve(mountPoint))?.pid
}

/** wait (bounded) for a condition that follows from something already done, e.g. a killed server's mount going away */
export async function waitFor (what: string, cond: () => boolean, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`)
    await sleep(20)
  }
}

function abortConnection (mountPoint: string): void {
  const m = findMount(path.resolve(mountPoint))
  if (!m) return
  const minor = m.device.split(':')[1]
  if (!fs.existsSync('/sys/fs/fuse/connections/' + minor)) spawnSync('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections'])
  try { fs.writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1') } catch { /* not a fuse mount any more */ }
}

/** Get rid of a mount by every means, gentlest first. */
export function forceUnmount (mountPoint: string): void {
  if (!isMounted(mountPoint)) return
  qimgCli(['umount', mountPoint], 60_000)
  if (!isMounted(mountPoint)) return
  spawnSync('fusermount', ['-uz', mountPoint], { timeout: 30_000 })
  if (!isMounted(mountPoint)) return
  abortConnection(mountPoint)
  spawnSync('umount', ['-l', mountPoint], { timeout: 30_000 })
}

/**
 * An empty directory to mount on, outside t.testdir() (tap removes that
 * before teardowns run); unmounted by every means and removed in teardown.
 */
export function mountDir (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-mnt-'))
  t.teardown(() => {
    forceUnmount(dir)
    try { fs.rmdirSync(dir) } catch { /* still busy: leave it rather than fail */ }
  })
  return dir
}

/** `qimg mount ARGS... MOUNTPOINT` on a fresh mountDir; returns the mount point. */
export function mountImage (t: Test, args: string[]): string {
  const mountPoint = mountDir(t)
  const r = qimgCli(['mount', ...args, mountPoint])
  if (r.code !== 0) throw new Error(`qimg mount ${args.join(' ')} failed: ${r.stderr}`)
  return mountPoint
}

/** cmp two files in a child process; true when equal */
export function sameBytes (a: string, b: string): boolean {
  const r = sh('cmp', [a, b])
  return r.code === 0
}

/** run a child process without waiting (for parallel readers); resolves with its result */
export function runAsync (cmd: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env: ENV })
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', d => { stdout += d })
    c.stderr.on('data', d => { stderr += d })
    c.on('error', reject)
    c.on('close', code => resolve({ stdout, stderr, code: code ?? 128 }))
  })
}
