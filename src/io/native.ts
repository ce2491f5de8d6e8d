// Loader for the small native addon (src/io/native/qimg_native.c). If it is
// missing (not built), callers fall back to what plain Node can do: every
// byte reported as data, preallocation by writing zeros, no image locks.
import { createRequire } from 'node:module'

export interface NativeCalls {
  lseek(fd: number, offset: number, whence: number): number
  fallocate(fd: number, mode: number, offset: number, length: number): number
  ofdLock(fd: number, type: number, start: number, length: number, test: number): number
  setNoCow(fd: number): number
  blockDeviceSize(fd: number): number
  /** raw-deflate `input` into all of `output` on libuv's pool; callback(0) when filled, (1) if the stream fell short or broke */
  inflateRawCluster?(input: Buffer, output: Buffer, callback: (status: number) => void): void
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
      const require = createRequire(import.meta.url)
      // dist/src/io/native.js and src/io/native.ts both sit three levels below the root
      loaded = require('../../../build/Release/qimg_native.node') as NativeCalls
    } catch {
      try {
        const require = createRequire(import.meta.url)
        loaded = require('../../build/Release/qimg_native.node') as NativeCalls
      } catch { loaded = null }
    }
  }
  return loaded
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  16: 'EBUSY', 22: 'EINVAL', 25: 'ENOTTY', 27: 'EFBIG', 28: 'ENOSPC', 30: 'EROFS', 95: 'EOPNOTSUPP',
}

export function errnoName (negErrno: number): string {
  return ERRNO_NAMES[-negErrno] ?? 'EIO'
}
