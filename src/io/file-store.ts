// ByteStore over a local file with positional I/O. Uses the callback fs API
// (cheaper than FileHandle promises on hot paths) and the native addon for
// holes and fallocate.
import { closeSync, constants, fdatasync, fstatSync, ftruncate, openSync, read as fsRead, write as fsWrite } from 'node:fs'
import { BlockError } from '../cli/errors.js'
import type { ByteStore, DataRun } from './byte-store.js'
import { native, errnoName, SEEK_DATA, SEEK_HOLE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from './native.js'
import { applyLock, type LockRequest } from './lock.js'

function ioError (err: unknown): BlockError {
  const e = err as NodeJS.ErrnoException
  return new BlockError(e.message, e.code ?? 'EIO')
}

function preadOnce (fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsRead(fd, buf, 0, buf.length, pos, (err, n) => err ? reject(ioError(err)) : resolve(n))
  })
}

function pwriteOnce (fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsWrite(fd, buf, 0, buf.length, pos, (err, n) => err ? reject(ioError(err)) : resolve(n))
  })
}

/**
 * Reads of at most this many bytes may be done on the JS thread when the
 * data is in the page cache (see setInlineCachedReads).
 */
const INLINE_READ_MAX = 256 << 10
const EOPNOTSUPP = -95
let inlineCachedReads = true

/**
 * Serve small reads whose data is already in the page cache right away, on
 * the JS thread (preadv2 with RWF_NOWAIT; tmpfs always qualifies), instead of
 * handing each to libuv's pool and waiting for the hand-off back: the two
 * thread hops cost more than copying 256 KiB. On by default: L2 tables and
 * compressed clusters for every command (`map` walks its tables one after
 * the other), the FUSE server's many 128 KiB requests. Large reads (convert's
 * 2 MiB chunks) still go to the pool, where they overlap; so does a read that
 * would wait for the disk, so a slow disk never stalls the JS thread.
 */
export function setInlineCachedReads (on: boolean): void {
  inlineCachedReads = on
}

export interface FileOpenOptions {
  writable: boolean
  /** create the file (O_CREAT), truncating it when `truncate` */
  create?: boolean
  truncate?: boolean
  /**
   * flush() does nothing: qemu's cache=unsafe (cache.no-flush=on), the
   * default for convert's target. Writes still reach the page cache in the
   * order they are made, so another process (or qemu-img check after a
   * crash of qimg) sees them in that order; only a power loss can reorder.
   */
  noFlush?: boolean
}

/**
 * Runs of data or hole found so far, by where they were asked for: walks
 * ask at the end of the run before, so a second walk finds each run under
 * its start; a question inside the last run found is answered too.
 * Forgotten past MAX runs.
 */
class RunCache {
  private static readonly MAX = 65536
  private byStart = new Map<number, DataRun>()
  private last: { start: number, run: DataRun } | undefined

  find (offset: number): DataRun | undefined {
    const exact = this.byStart.get(offset)
    if (exact) return exact
    const l = this.last
    if (l && l.start <= offset && offset < l.run.end) return l.run
    return undefined
  }

  add (start: number, run: DataRun): void {
    if (run.end <= start) return
    if (this.byStart.size >= RunCache.MAX) this.byStart = new Map()
    this.byStart.set(start, run)
    this.last = { start, run }
  }
}

export class FileStore implements ByteStore {
  private cachedSize: number
  private closed = false
  /** false once the file system turned RWF_NOWAIT down */
  private nowaitWorks = true
  /**
   * Data runs already found in a file opened read-only: convert walks a raw
   * source twice (counting, then copying), and on tmpfs each SEEK_HOLE over
   * a large run of data costs milliseconds. (qemu keeps a similar cache of
   * block status.) A file opened for writing asks every time.
   */
  private readonly knownRuns: RunCache | null

  private constructor (readonly filename: string, readonly fd: number, readonly writable: boolean, size: number, readonly isBlockDevice: boolean, private readonly noFlush: boolean) {
    this.cachedSize = size
    this.knownRuns = writable ? null : new RunCache()
  }

  static async open (filename: string, opts: FileOpenOptions): Promise<FileStore> {
    let flags = opts.writable ? constants.O_RDWR : constants.O_RDONLY
    if (opts.create) flags |= constants.O_CREAT
    if (opts.truncate) flags |= constants.O_TRUNC
    // on the JS thread: a command has nothing else to do while it opens its
    // images, and a hand-off to libuv's pool would start the pool, which
    // commands that read only metadata (info, map, check...) never need
    // otherwise (~0.5 ms of their start)
    const fd = openSync(filename, flags, 0o644)
    try {
      const st = fstatSync(fd)
      if (st.isDirectory()) throw Object.assign(new Error('Is a directory'), { code: 'EISDIR' })
      let size = st.size
      const isBlock = st.isBlockDevice()
      if (isBlock) {
        const n = native()?.blockDeviceSize(fd)
        if (n !== undefined && n >= 0) size = n
      }
      return new FileStore(filename, fd, opts.writable, size, isBlock, opts.noFlush ?? false)
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  async size (): Promise<number> { return this.cachedSize }

  /** Take (or change) qemu-compatible image locks on this file; throws on conflict. */
  lock (req: LockRequest): void {
    applyLock(this.fd, this.filename, req)
  }

  async read (buf: Buffer, offset: number): Promise<number> {
    let done = 0
    if (inlineCachedReads && this.nowaitWorks && buf.length <= INLINE_READ_MAX && Number.isSafeInteger(offset + buf.length)) {
      const n = native()?.preadCached?.(this.fd, buf, offset) ?? EOPNOTSUPP
      if (n === buf.length) return n
      if (n > 0) done = n
      else if (n === EOPNOTSUPP) this.nowaitWorks = false
      // EAGAIN (not cached), a short read, or an error: the pool read below
      // fetches the rest, and reports errors as it always does
    }
    // offsets taken from hostile metadata can lie past anything a file can hold: that reads as zeros
    while (done < buf.length && Number.isSafeInteger(offset + buf.length)) {
      const n = await preadOnce(this.fd, buf.subarray(done), offset + done)
      if (n === 0) break
      done += n
    }
    if (done < buf.length) buf.fill(0, done)
    return done
  }

  async write (buf: Buffer, offset: number): Promise<void> {
    if (!this.writable) throw new BlockError('Read-only file', 'EBADF')
    let done = 0
    while (done < buf.length) {
      done += await pwriteOnce(this.fd, buf.subarray(done), offset + done)
    }
    if (offset + buf.length > this.cachedSize && !this.isBlockDevice) this.cachedSize = offset + buf.length
  }

  async truncate (size: number): Promise<void> {
    if (this.isBlockDevice) {
      if (size > this.cachedSize) throw new BlockError('Cannot grow device files', 'EINVAL')
      return
    }
    await new Promise<void>((resolve, reject) => ftruncate(this.fd, size, err => err ? reject(ioError(err)) : resolve()))
    this.cachedSize = size
  }

  async punchHole (offset: number, length: number): Promise<void> {
    const end = Math.min(offset + length, this.cachedSize)
    if (end <= offset) return
    const n = native()
    if (n && !this.isBlockDevice) {
      // the whole range, even past the end of the file (KEEP_SIZE): a last
      // partial block is then freed too, not just zeroed
      const r = n.fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)
      if (r === 0) return
    }
    // no hole punching here: write zeros instead
    const chunk = Buffer.alloc(Math.min(end - offset, 1 << 20))
    for (let pos = offset; pos < end; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, end - pos)), pos)
    }
  }

  async zeroRange (offset: number, length: number): Promise<void> {
    if (!this.writable) throw new BlockError('Read-only file', 'EBADF')
    const n = native()
    if (n && !this.isBlockDevice && length > 0) {
      const r = n.fallocate(this.fd, FALLOC_FL_ZERO_RANGE, offset, length)
      if (r === 0) {
        if (offset + length > this.cachedSize) this.cachedSize = offset + length
        return
      }
    }
    const chunk = Buffer.alloc(Math.min(length, 1 << 20))
    for (let pos = offset; pos < offset + length; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, offset + length - pos)), pos)
    }
  }

  async allocate (offset: number, length: number): Promise<void> {
    const n = native()
    if (n) {
      const r = n.fallocate(this.fd, 0, offset, length)
      if (r === 0) {
        if (offset + length > this.cachedSize) this.cachedSize = offset + length
        return
      }
      if (errnoName(r) !== 'EOPNOTSUPP') throw new BlockError(`Could not preallocate data: ${errnoName(r)}`, errnoName(r))
    }
    // fallback: write zeros where the file does not reach yet
    const start = Math.max(offset, this.cachedSize)
    const end = offset + length
    const chunk = Buffer.alloc(Math.min(Math.max(end - start, 0), 1 << 20))
    for (let pos = start; pos < end; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, end - pos)), pos)
    }
  }

  async dataRun (offset: number): Promise<DataRun> {
    const size = this.cachedSize
    if (offset >= size) return { data: false, end: offset }
    const known = this.knownRuns?.find(offset)
    if (known) return known
    const n = native()
    if (!n || this.isBlockDevice) return { data: true, end: size }
    let run: DataRun
    const d = n.lseek(this.fd, offset, SEEK_DATA)
    if (d < 0) {
      // ENXIO: no data after offset at all
      run = errnoName(d) === 'ENXIO' ? { data: false, end: size } : { data: true, end: size }
    } else if (d > offset) {
      run = { data: false, end: Math.min(d, size) }
    } else {
      const h = n.lseek(this.fd, offset, SEEK_HOLE)
      run = { data: true, end: h < 0 ? size : Math.min(h, size) }
    }
    this.knownRuns?.add(offset, run)
    return run
  }

  async allocatedSize (): Promise<number> {
    const st = fstatSync(this.fd)
    return st.blocks * 512
  }

  async flush (): Promise<void> {
    if (!this.writable || this.noFlush) return
    await new Promise<void>((resolve, reject) => fdatasync(this.fd, err => err ? reject(ioError(err)) : resolve()))
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // (as open: on the JS thread)
    try {
      closeSync(this.fd)
    } catch (err) {
      throw ioError(err)
    }
  }
}
