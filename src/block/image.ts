// ImageBase: what every format shares. A format says what one layer holds
// (layerStatus) and how to read its allocated bytes (readData); reading
// through the backing chain, chain-wide block status and argument checks are
// written once here.
import { BlockError } from '../cli/errors.js'
import type { ByteStore } from '../io/byte-store.js'
import { settleInOrder } from './settle.js'
import type { Extent, Image, ImageDetails, LayerStatus, StatusOptions, WriteZeroesOptions } from './types.js'

const EACH_RUN_STATUS: StatusOptions = { compressedRuns: true }

export abstract class ImageBase implements Image {
  abstract readonly format: string
  backing: Image | null = null
  backingName?: string
  backingFormat?: string

  constructor (readonly filename: string, readonly store: ByteStore, public size: number, readonly readOnly: boolean) {}

  /** status of [offset, offset+length) in this layer; length is clipped to `size` by the caller */
  abstract layerStatus (offset: number, length: number, opts?: StatusOptions): Promise<LayerStatus>

  /** read a range inside one extent this layer reported as 'data' (`status` is that report) */
  protected abstract readData (buf: Buffer, offset: number, status: LayerStatus): Promise<void>

  async details (): Promise<ImageDetails> { return {} }

  protected checkRange (offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new BlockError(`Access beyond end of image (offset ${offset}, length ${length}, size ${this.size})`, 'EIO')
    }
  }

  protected checkWritable (): void {
    if (this.readOnly) throw new BlockError('Image is read-only', 'EACCES')
  }

  async read (buf: Buffer, offset: number): Promise<void> {
    this.checkRange(offset, buf.length)
    await this.eachRun(offset, buf.length, (pos, len, st) => {
      const part = buf.subarray(pos - offset, pos - offset + len)
      if (st.kind === 'data') return this.readData(part, pos, st)
      if (st.kind === 'zero') { part.fill(0); return undefined }
      return this.readBelow(part, pos)
    })
  }

  /** Warm the caches for a later read of [offset, offset+length) (see Image.prefetch). */
  async prefetch (offset: number, length: number): Promise<void> {
    this.checkRange(offset, length)
    await this.eachRun(offset, length, (pos, len, st) => {
      if (st.kind === 'data') return this.prefetchData(pos, len, st)
      const b = this.backing
      if (st.kind === 'zero' || !b || pos >= b.size) return undefined
      const inside = Math.min(len, b.size - pos)
      return b.prefetch ? b.prefetch(pos, inside) : b.read(Buffer.allocUnsafe(inside), pos)
    })
  }

  /**
   * Walk this layer's runs over [offset, offset+length) and start `visit` on
   * each at once, not one after the other: costly runs (compressed,
   * encrypted) would otherwise wait for each other's reads and inflating,
   * and a run of compressed clusters comes as one run, whose clusters the
   * format asks for together. Settles when every run has;
   * the error is the one of the lowest offset, as when going run by run (a
   * status query that fails comes after the runs before it).
   */
  private async eachRun (offset: number, length: number, visit: (pos: number, len: number, st: LayerStatus) => Promise<void> | undefined): Promise<void> {
    const end = offset + length
    const jobs: Array<Promise<void>> = []
    let statusError: { reason: unknown } | undefined
    for (let pos = offset; pos < end;) {
      let st: LayerStatus
      try {
        // (a run of compressed clusters at once: a sequential reader asks for several per request)
        st = await this.layerStatus(pos, end - pos, EACH_RUN_STATUS)
      } catch (e) {
        statusError = { reason: e }
        break
      }
      const len = Math.min(st.length, end - pos)
      const job = visit(pos, len, st)
      if (job) jobs.push(job)
      pos += len
    }
    await settleInOrder(jobs)
    if (statusError) throw statusError.reason
  }

  /**
   * Warm the caches for one run this layer reported as data. Plain data has
   * nothing to prepare (the kernel's page cache holds it); a format whose
   * data costs work to produce and is cached overrides this.
   */
  protected async prefetchData (_offset: number, _length: number, _status: LayerStatus): Promise<void> {}

  /** What this image shows where it has nothing of its own: the backing file, or zeros. */
  protected async readBelow (buf: Buffer, offset: number): Promise<void> {
    const b = this.backing
    if (!b || offset >= b.size) { buf.fill(0); return }
    const inside = Math.min(buf.length, b.size - offset)
    await b.read(buf.subarray(0, inside), offset)
    if (inside < buf.length) buf.fill(0, inside)
  }

  async blockStatus (offset: number, length: number, opts?: StatusOptions): Promise<Extent> {
    this.checkRange(offset, length)
    let img: Image = this
    let depth = 0
    let len = length
    for (;;) {
      const st = await img.layerStatus(offset, len, opts)
      len = Math.min(st.length, len)
      const below = img.backing
      if (st.kind !== 'unallocated' || !below || offset >= below.size) {
        return this.refineWithHostFile({ ...st, length: len, offset, depth })
      }
      len = Math.min(len, below.size - offset)
      img = below
      depth++
    }
  }

  /**
   * Data stored plainly in a host file can still read as zeros where the file
   * has a hole (preallocation=metadata): when the layer says so (checkHost),
   * ask the file, as qemu does for map and convert, and report the run up to
   * where the file's answer changes.
   */
  private async refineWithHostFile (ext: Extent): Promise<Extent> {
    if (ext.kind !== 'data' || !ext.checkHost || ext.hostOffset === undefined || !ext.store || ext.zero) return ext
    const run = await ext.store.dataRun(ext.hostOffset)
    if (run.end <= ext.hostOffset) return { ...ext, zero: true } // past the end of the file
    const length = Math.min(ext.length, run.end - ext.hostOffset)
    return run.data ? { ...ext, length } : { ...ext, length, zero: true }
  }

  async write (_buf: Buffer, _offset: number): Promise<void> {
    this.checkWritable()
    throw new BlockError(`Writing ${this.format} images is not supported`, 'ENOTSUP')
  }

  async writeZeroes (offset: number, length: number, _opts?: WriteZeroesOptions): Promise<void> {
    // generic fallback: write a zero buffer in pieces
    this.checkWritable()
    this.checkRange(offset, length)
    const chunk = Buffer.alloc(Math.min(length, 1 << 20))
    for (let pos = offset; pos < offset + length; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, offset + length - pos)), pos)
    }
  }

  async discard (_offset: number, _length: number): Promise<void> {
    // discard is advisory: formats that can free space override this
    this.checkWritable()
  }

  async flush (): Promise<void> {
    await this.store.flush()
  }

  /** Close this layer's own resources (not the backing chain). */
  protected async closeLayer (): Promise<void> {
    await this.store.close()
  }

  async close (): Promise<void> {
    try {
      await this.closeLayer()
    } finally {
      const b = this.backing
      this.backing = null
      if (b) await b.close()
    }
  }
}
