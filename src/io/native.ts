// Loader for the small native addon (src/io/native/qimg_native.c). If it is
// missing (not built), callers fall back to what plain Node can do: every
// byte reported as data, preallocation by writing zeros, no image locks.
import { join } from 'node:path'
import { projectRoot } from '../project-root.js'

export interface NativeCalls {
  lseek(fd: number, offset: number, whence: number): number
  fallocate(fd: number, mode: number, offset: number, length: number): number
  ofdLock(fd: number, type: number, start: number, length: number, test: number): number
  setNoCow(fd: number): number
  blockDeviceSize(fd: number): number
  /**
   * raw-deflate input[spans[2i], +spans[2i+1]) into all of outputs[i], for
   * each i, on libuv's pool; statuses[i] = 0 when filled, 1 if the stream
   * fell short or broke; then callback()
   */
  inflateRawClusters?(input: Buffer, spans: Uint32Array, outputs: Buffer[], statuses: Uint8Array, callback: () => void): void
  /**
   * convert's copy of a plain chunk on libuv's pool (see copy.c): read
   * buffer.length bytes of srcFd at srcOffset, then (unless `scan` finds an
   * all-zero sector) write the first writeLength of them to dstFd at
   * dstOffset; callback(status): 0 copied, 1 read but a sector is all zeros,
   * 2 not read in full, 3 read but the write failed
   */
  copyChunk?(srcFd: number, srcOffset: number, dstFd: number, dstOffset: number, buffer: Buffer, writeLength: number, scan: boolean, callback: (status: number) => void): void
  /** pread that refuses (-EAGAIN) to wait for the disk: bytes read or -errno */
  preadCached?(fd: number, buf: Buffer, offset: number): number
  /** a page-aligned Buffer of `size` bytes, or null */
  alignedBuffer?(size: number): Buffer | null
  /** map[i] = 1 for each all-zero 512-byte sector i of buf (0 otherwise); the number of zero sectors, or -errno */
  zeroSectorMap?(buf: Buffer, map: Uint8Array): number
  /**
   * how many qcow2 L2 entries from byte `at` of `table` (at most `max`) are
   * plain clusters one after another in the host file, the first at `next`
   * (see qimg_native.c); -errno for entries past the table
   */
  plainRunEntries?(table: Buffer, at: number, max: number, next: number, clusterSize: number, zeroFlag: number): number
  /** _exit(code): the process ends here, without Node's teardown */
  exitNow?(code: number): never
  /** SCHED_BATCH for the calling thread (and the threads it starts later); 0 or -errno */
  setBatchScheduling?(): number
  /** CPUs the calling thread may run on, or -errno */
  usableCpus?(): number
}

export const SEEK_DATA = 3
export const SEEK_HOLE = 4
export const FALLOC_FL_KEEP_SIZE = 0x01
export const FALLOC_FL_PUNCH_HOLE = 0x02
export const FALLOC_FL_ZERO_RANGE = 0x10

let loaded: NativeCalls | null | undefined

export function native (): NativeCalls | null {
  if (loaded === undefined) {
    try {
      // process.dlopen, not require: the module loader's resolution of the
      // path (realpath, package scope) cost more than loading the addon
      const addon = { exports: {} }
      process.dlopen(addon, join(projectRoot(), 'build/Release/qimg_native.node'))
      loaded = addon.exports as NativeCalls
    } catch { loaded = null }
  }
  return loaded
}

/**
 * A buffer for large reads and writes (uninitialised, like allocUnsafe).
 * Page-aligned when the addon is there: the kernel copies into and out of
 * aligned memory about a quarter faster than into Node's malloc'd buffers,
 * which start 16 bytes past a page boundary.
 */
export function allocIoBuffer (size: number): Buffer {
  return native()?.alignedBuffer?.(size) ?? Buffer.allocUnsafe(size)
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  16: 'EBUSY', 22: 'EINVAL', 25: 'ENOTTY', 27: 'EFBIG', 28: 'ENOSPC', 30: 'EROFS', 95: 'EOPNOTSUPP',
}

export function errnoName (negErrno: number): string {
  return ERRNO_NAMES[-negErrno] ?? 'EIO'
}
