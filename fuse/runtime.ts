// What a mount needs from the system, checked before mounting so failures
// read as one clear line: the mount point, /dev/fuse, libfuse2 (which
// fuse-native links) and fusermount (fuse3, for auto_unmount). Also the
// mount table, the server's pid file, and unmounting.
import { Stats, accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve as pathResolve } from 'node:path'
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { BlockError } from '../src/cli/errors.js'

export const FS_TYPE = 'fuse.qimg'

export interface MountEntry {
  mountPoint: string
  fsType: string
  source: string
  /** major:minor; for FUSE the minor is the connection's number in fusectl */
  device: string
}

/** /proc/self/mountinfo's escapes (\040 for space, ...) */
function unescapeMountField (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** The mount table; reading it never touches a mount, so the server may too. */
export function readMountTable (): MountEntry[] {
  let text: string
  try { text = readFileSync('/proc/self/mountinfo', 'utf8') } catch { return [] }
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (f.length < 10 || sep < 6) continue
    out.push({ mountPoint: unescapeMountField(f[4]), fsType: f[sep + 1], source: unescapeMountField(f[sep + 2]), device: f[2] })
  }
  return out
}

/** The topmost mount at `mountPoint` (an absolute, resolved path), if any. */
export function findMount (mountPoint: string): MountEntry | undefined {
  return readMountTable().filter(m => m.mountPoint === mountPoint).pop()
}

/**
 * The absolute path of a mount point without stat()ing the mount point itself
 * (a wedged FUSE mount would hang that): the parent is resolved, the last
 * component kept.
 */
export function mountPointPath (name: string): string {
  const abs = pathResolve(name)
  if (abs === '/') return abs
  let parent = dirname(abs)
  try { parent = realpathSync(parent) } catch { /* reported when the mount point is checked */ }
  return join(parent, basename(abs))
}

/** realpath when the file exists, else the name as absolute as it gets */
export function realOrResolved (name: string): string {
  try { return realpathSync(name) } catch { return pathResolve(name) }
}

/** Check a mount point before mounting; returns its resolved path. */
export function checkMountPoint (name: string): string {
  const abs = mountPointPath(name)
  if (findMount(abs)) throw new BlockError(`Mount point '${name}' is busy (already mounted)`, 'EBUSY')
  let st: Stats
  try {
    st = statSync(abs)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new BlockError(`Mount point '${name}' does not exist`, 'ENOENT')
    if (code === 'ENOTDIR') throw new BlockError(`Mount point '${name}' is not a directory`, 'ENOTDIR')
    throw new BlockError(`Mount point '${name}': ${(e as Error).message}`, code ?? 'EIO')
  }
  if (!st.isDirectory()) throw new BlockError(`Mount point '${name}' is not a directory`, 'ENOTDIR')
  const real = realpathSync(abs)
  if (real !== abs && findMount(real)) throw new BlockError(`Mount point '${name}' is busy (already mounted)`, 'EBUSY')
  return real
}

/** fuse-native's Fuse class, loaded on demand (it dlopens libfuse.so.2). */
export type FuseClass = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => {
  mount(cb: (err: Error | null) => void): void
}

export function loadFuse (): FuseClass {
  try {
    return createRequire(import.meta.url)('fuse-native') as FuseClass
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]
    if (/libfuse/.test(msg)) throw new BlockError(`Cannot load libfuse.so.2 (${msg}): install the Debian package libfuse2`, 'ENOENT')
    throw new BlockError(`Cannot load fuse-native: ${msg}`, 'ENOENT')
  }
}

function onPath (cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin'])) {
    try { accessSync(join(dir, cmd), constants.X_OK); return true } catch { /* next */ }
  }
  return false
}

/** /dev/fuse, libfuse2 and fusermount, with the package to install for each. */
export function checkFuseAvailable (opts: { allowOther?: boolean } = {}): void {
  if (!existsSync('/dev/fuse')) {
    throw new BlockError('FUSE is not available: /dev/fuse does not exist (load the fuse kernel module, or give the container the device)', 'ENODEV')
  }
  loadFuse()
  if (!onPath('fusermount') && !onPath('fusermount3')) {
    throw new BlockError('fusermount not found: install the Debian package fuse3', 'ENOENT')
  }
  if (opts.allowOther && process.getuid?.() !== 0) {
    let conf = ''
    try { conf = readFileSync('/etc/fuse.conf', 'utf8') } catch { /* absent: not allowed */ }
    if (!/^\s*user_allow_other\b/m.test(conf)) {
      throw new BlockError('--allow-other needs \'user_allow_other\' in /etc/fuse.conf (or run as root)', 'EPERM')
    }
  }
}

/** Where the server of a mount point records its pid (for `qimg umount`). */
export function pidFilePath (mountPoint: string): string {
  const uid = process.getuid?.() ?? 0
  const dir = uid === 0 ? '/run/qimg' : process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'qimg') : join(tmpdir(), `qimg-${uid}`)
  const key = createHash('sha256').update(mountPoint).digest('hex').slice(0, 32)
  return join(dir, `${key}.pid`)
}

/**
 * A live process's start time (jiffies since boot), to tell a server from a
 * reused pid; undefined once it has exited (zombies included).
 */
export function processStartTime (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19]
  } catch {
    return undefined
  }
}

/** Pid files of servers that were killed (SIGKILL leaves them behind). */
function sweepStalePidFiles (dir: string): void {
  let names: string[]
  try { names = readdirSync(dir) } catch { return }
  for (const name of names) {
    if (!name.endsWith('.pid')) continue
    const file = join(dir, name)
    try {
      const [pid, start] = readFileSync(file, 'utf8').split('\n')[0].split(' ')
      if (processStartTime(Number(pid)) !== start) unlinkSync(file)
    } catch { /* raced with its owner: leave it */ }
  }
}

export function writePidFile (mountPoint: string): string {
  const file = pidFilePath(mountPoint)
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  sweepStalePidFiles(dirname(file))
  writeFileSync(file, `${process.pid} ${processStartTime(process.pid) ?? ''}\n${mountPoint}\n`)
  return file
}

export interface ServerProcess { pid: number, start: string }

/** The live server of `mountPoint`, if its pid file names one. */
export function readPidFile (mountPoint: string): ServerProcess | undefined {
  let text: string
  try { text = readFileSync(pidFilePath(mountPoint), 'utf8') } catch { return undefined }
  const [pidText, start] = text.split('\n')[0].split(' ')
  const pid = Number(pidText)
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
  const now = processStartTime(pid)
  return now !== undefined && now === start ? { pid, start } : undefined
}

export function removePidFile (mountPoint: string): void {
  try {
    const file = pidFilePath(mountPoint)
    if (readFileSync(file, 'utf8').startsWith(`${process.pid} `)) unlinkSync(file)
  } catch { /* already gone */ }
}

/** `fusermount -u [-z] MOUNTPOINT`; resolves to fusermount's complaint, or undefined on success. */
export function fusermount (mountPoint: string, lazy: boolean): Promise<string | undefined> {
  const cmd = onPath('fusermount') ? 'fusermount' : 'fusermount3'
  return new Promise(resolve => {
    execFile(cmd, [lazy ? '-uz' : '-u', '--', mountPoint], (err, _stdout, stderr) => {
      resolve(err ? (stderr.trim() || err.message) : undefined)
    })
  })
}
