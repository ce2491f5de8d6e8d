// Read-ahead for data that is expensive to produce: when a file is read
// sequentially, the clusters just ahead that are compressed or encrypted
// (data with no plain host offset) are read in the background, so they are
// decompressed/decrypted in parallel on the libuv pool and waiting in the
// shared cluster cache when the reader gets there. Plain data is left to the
// kernel's page cache.
import type { View, ViewStatus } from '../view.js'
import type { StatusOptions } from '../../src/block/types.js'

/** how far ahead of a sequential reader to prepare */
export const READ_AHEAD_BYTES = 2 << 20
/** background reads in flight at once, each up to CHUNK bytes */
const MAX_IN_FLIGHT = 4
const CHUNK = 256 << 10

export class ReadAheadView implements View {
  private lastEnd = -1
  /** everything below this offset has been prefetched (or judged not worth it) */
  private aheadTo = 0
  private inFlight = 0

  constructor (private readonly inner: View) {}

  get size (): number { return this.inner.size }
  get readOnly (): boolean { return this.inner.readOnly }

  async read (buf: Buffer, offset: number): Promise<void> {
    // the kernel's own read-ahead may reorder requests a little: near the last end counts as sequential
    const sequential = this.lastEnd >= 0 && Math.abs(offset - this.lastEnd) <= 2 * CHUNK
    this.lastEnd = offset + buf.length
    if (sequential) this.readAhead(this.lastEnd)
    else this.aheadTo = this.lastEnd
    await this.inner.read(buf, offset)
  }

  private readAhead (from: number): void {
    const limit = Math.min(from + READ_AHEAD_BYTES, this.size)
    if (this.aheadTo < from) this.aheadTo = from
    while (this.inFlight < MAX_IN_FLIGHT && this.aheadTo < limit) {
      const start = this.aheadTo
      const len = Math.min(CHUNK, limit - start)
      this.aheadTo += len
      this.inFlight++
      this.prepare(start, len)
        .catch(() => undefined) // a real read of the range will report the error
        .finally(() => {
          this.inFlight--
          if (this.lastEnd >= 0) this.readAhead(this.lastEnd)
        })
    }
  }

  /**
   * Prefetch the costly extents of [start, start+len): their clusters land in
   * the cache (views without prefetch are read into a scratch buffer). Cheap
   * extents (plain data, zeros) found on the way are skipped whole, however
   * far they reach past the window, so a plainly stored image costs one
   * status query per extent, not per chunk.
   */
  private async prepare (start: number, len: number): Promise<void> {
    const end = start + len
    let pos = start
    while (pos < end) {
      const st = await this.inner.blockStatus(pos, this.size - pos)
      const extentEnd = pos + Math.max(1, Math.min(st.length, this.size - pos))
      if (st.kind === 'data' && st.hostOffset === undefined) {
        // the rest of the window at once: prefetch walks it in one go (and
        // passes over cheap runs itself), and the image reads and
        // decompresses its clusters together
        const n = (this.inner.prefetch ? end : Math.min(extentEnd, end)) - pos
        if (this.inner.prefetch) await this.inner.prefetch(pos, n)
        else await this.inner.read(Buffer.allocUnsafe(n), pos)
        pos += n
        continue
      }
      if (extentEnd > this.aheadTo) this.aheadTo = extentEnd
      pos = extentEnd
    }
  }

  write (buf: Buffer, offset: number): Promise<void> { return this.inner.write(buf, offset) }
  writeZeroes (offset: number, length: number, opts?: { unmap?: boolean }): Promise<void> { return this.inner.writeZeroes(offset, length, opts) }
  discard (offset: number, length: number): Promise<void> { return this.inner.discard(offset, length) }
  blockStatus (offset: number, length: number, opts?: StatusOptions): Promise<ViewStatus> { return this.inner.blockStatus(offset, length, opts) }
  flush (): Promise<void> { return this.inner.flush() }
}
