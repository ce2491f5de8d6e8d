// Image locking compatible with QEMU's: open-file-description byte-range
// locks on the image file. Byte 100+i is read-locked by every user that holds
// permission i; byte 200+i by every user that does not let others hold it.
// A user may take a permission only if nobody has byte 200+i locked, and may
// refuse to share it only if nobody has byte 100+i locked. So qemu-img and
// QEMU see qimg's opens, and qimg sees theirs.
import { BlockError } from '../cli/errors.js'
import { native } from './native.js'

export const PERM_CONSISTENT_READ = 1 << 0
export const PERM_WRITE = 1 << 1
export const PERM_WRITE_UNCHANGED = 1 << 2
export const PERM_RESIZE = 1 << 3
export const PERM_GRAPH_MOD = 1 << 4
export const PERM_ALL = 0x1f

const PERM_BASE = 100
const SHARED_BASE = 200
const NAMES = ['consistent read', 'write', 'write unchanged', 'resize', 'change children']

const RDLCK = 0
const WRLCK = 1
const UNLCK = 2

export interface LockRequest {
  /** permissions this user holds */
  held: number
  /** permissions this user lets others hold */
  shared: number
}

/** The locks qemu takes for an image file of `format` opened read-only or read-write. */
export function lockFor (format: string, writable: boolean, forceShare: boolean): LockRequest {
  const held = PERM_CONSISTENT_READ | (writable ? PERM_WRITE : 0) | (writable && format !== 'raw' ? PERM_RESIZE : 0)
  // raw passes everything through and lets others write; other formats own their metadata
  const shared = forceShare || format === 'raw' ? PERM_ALL : PERM_ALL & ~(PERM_WRITE | PERM_RESIZE)
  return { held, shared }
}

/**
 * Take the locks on `fd` (replacing earlier ones), or throw qemu's message
 * naming the first conflicting permission. Without the native addon, no locks.
 */
export function applyLock (fd: number, filename: string, req: LockRequest): void {
  const n = native()
  if (!n) return
  for (let i = 0; i < NAMES.length; i++) {
    const bit = 1 << i
    n.ofdLock(fd, req.held & bit ? RDLCK : UNLCK, PERM_BASE + i, 1, 0)
    n.ofdLock(fd, req.shared & bit ? UNLCK : RDLCK, SHARED_BASE + i, 1, 0)
  }
  for (let i = 0; i < NAMES.length; i++) {
    const bit = 1 << i
    let problem: string | undefined
    if ((req.held & bit) && n.ofdLock(fd, WRLCK, SHARED_BASE + i, 1, 1) === 1) problem = `Failed to get "${NAMES[i]}" lock`
    else if (!(req.shared & bit) && n.ofdLock(fd, WRLCK, PERM_BASE + i, 1, 1) === 1) problem = `Failed to get shared "${NAMES[i]}" lock`
    if (problem) {
      releaseLock(fd)
      throw new BlockError(`${problem}\nIs another process using the image [${filename}]?`, 'EAGAIN')
    }
  }
}

export function releaseLock (fd: number): void {
  native()?.ofdLock(fd, UNLCK, PERM_BASE, SHARED_BASE + NAMES.length - PERM_BASE, 0)
}
