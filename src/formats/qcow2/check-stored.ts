// The refcounts stored in the image: the refcount table and the refcount
// blocks it points to, read (and, when repairing, patched) the way qemu's
// own refcount code sees them: a missing block or one past the end of the
// file reads as zeros, a misaligned block is a corruption that fails the read.
import { BlockError } from '../../cli/errors.js'
import { altHex, type CheckContext } from './check-context.js'
import { getRefcount, refcountBlockEntries, setRefcount } from './refcount.js'

/** refcount blocks kept in memory while walking the refcounts in order */
const BLOCK_CACHE = 64

export class StoredRefcounts {
  reftable: Buffer = Buffer.alloc(0)
  readonly perBlock: number
  private readonly order: number
  private readonly blocks = new Map<number, Buffer>()
  private readonly dirty = new Set<number>()
  /** the block cached() used last (lookups mostly stay within one block) */
  private lastIndex = -1
  private lastBlock?: Buffer

  constructor (private readonly ctx: CheckContext) {
    this.order = ctx.header.refcountOrder
    this.perBlock = refcountBlockEntries(ctx.clusterBits, this.order)
  }

  /** (Re)load the refcount table the header points to. */
  async load (): Promise<void> {
    const h = this.ctx.header
    this.reftable = Buffer.alloc(h.refcountTableClusters * this.ctx.cs)
    this.lastIndex = -1
    this.blocks.clear()
    this.dirty.clear()
    if (this.reftable.length > 0) await this.ctx.read(this.reftable, h.refcountTableOffset)
  }

  get tableEntries (): number { return this.reftable.length / 8 }

  /** Raw refcount table entry i as [hi, lo]. */
  entry (i: number): [number, number] {
    return [this.reftable.readUInt32BE(i * 8), this.reftable.readUInt32BE(i * 8 + 4)]
  }

  /** Offset of refcount block i (bits 9-63 of its entry); Infinity if beyond any file. */
  blockOffset (i: number): number {
    if (i >= this.tableEntries) return 0
    const [hi, lo] = this.entry(i)
    if (hi >= 0x200000) return Infinity
    return hi * 0x100000000 + ((lo & ~0x1ff) >>> 0)
  }

  /** The refcount block covering block index i, or null where none is allocated. */
  async block (i: number): Promise<Buffer | null> {
    const cached = this.blocks.get(i)
    if (cached) return cached
    const off = this.blockOffset(i)
    if (off === 0) return null
    const [hi, lo] = this.entry(i)
    if (((lo & ~0x1ff) >>> 0) % this.ctx.cs !== 0) {
      const full = (BigInt(hi) << 32n) | BigInt((lo & ~0x1ff) >>> 0)
      throw await this.ctx.corruptionEvent(`Refblock offset ${altHex(full)} unaligned (reftable index: ${altHex(i)})`)
    }
    // a block past the end of the file reads as zeros
    const buf = Buffer.alloc(this.ctx.cs)
    if (off < this.ctx.fileSize) await this.ctx.read(buf, off)
    if (this.blocks.size >= BLOCK_CACHE) await this.evict()
    this.lastIndex = -1
    this.blocks.set(i, buf)
    return buf
  }

  private async evict (): Promise<void> {
    for (const [i] of this.blocks) {
      if (this.dirty.has(i)) await this.writeBlock(i)
      this.blocks.delete(i)
      if (this.blocks.size < BLOCK_CACHE / 2) return
    }
  }

  private async writeBlock (i: number): Promise<void> {
    const buf = this.blocks.get(i)
    if (!buf) return
    if (this.ctx.guard) await this.ctx.guard.write(buf, this.blockOffset(i), ['refcount block'])
    else await this.ctx.write(buf, this.blockOffset(i))
    this.dirty.delete(i)
  }

  /** Refcount from an already loaded block (undefined when the block must be read first). */
  cached (cluster: number): number | undefined {
    const i = Math.floor(cluster / this.perBlock)
    if (i === this.lastIndex) return getRefcount(this.lastBlock!, cluster - i * this.perBlock, this.order)
    const b = this.blocks.get(i)
    if (b) { this.lastIndex = i; this.lastBlock = b }
    if (b) return getRefcount(b, cluster - i * this.perBlock, this.order)
    if (i >= this.tableEntries || this.blockOffset(i) === 0) return 0
    return undefined
  }

  /** Refcount of entry k of a block buffer */
  entryOf (block: Buffer, k: number): number {
    return getRefcount(block, k, this.order)
  }

  /**
   * A refcount as printed: 64-bit refcounts past 2^53 (where the numbers used
   * for comparing saturate) are read exactly from the cached block.
   */
  text (cluster: number, value: number): string {
    if (this.order < 6 || value < Number.MAX_SAFE_INTEGER) return String(value)
    const i = Math.floor(cluster / this.perBlock)
    const b = this.blocks.get(i)
    return b ? b.readBigUInt64BE((cluster - i * this.perBlock) * 8).toString() : String(value)
  }

  /** Stored refcount of host cluster `cluster`. Throws BlockError(EIO) for an unreadable block. */
  async get (cluster: number): Promise<number> {
    const hit = this.cached(cluster)
    if (hit !== undefined) return hit
    const i = Math.floor(cluster / this.perBlock)
    if (i >= this.tableEntries) return 0
    const b = await this.block(i)
    return b ? getRefcount(b, cluster % this.perBlock, this.order) : 0
  }

  /** Patch the stored refcount of a cluster whose refcount block exists. */
  async set (cluster: number, value: number): Promise<void> {
    const i = Math.floor(cluster / this.perBlock)
    const b = i < this.tableEntries ? await this.block(i) : null
    if (!b) throw new BlockError('Refcount block missing', 'EINVAL')
    setRefcount(b, cluster % this.perBlock, this.order, value)
    this.dirty.add(i)
  }

  /** true when cluster `cluster` is covered by an allocated refcount block */
  hasBlockFor (cluster: number): boolean {
    const i = Math.floor(cluster / this.perBlock)
    return i < this.tableEntries && this.blockOffset(i) !== 0
  }

  /**
   * Put a new, empty refcount block for block index i at `offset` (a free
   * cluster) and point the refcount table at it. The block is written before
   * the table entry, so a crash leaves at most a leaked cluster.
   */
  async installBlock (i: number, offset: number): Promise<void> {
    const buf = Buffer.alloc(this.ctx.cs)
    await this.ctx.write(buf, offset)
    await this.ctx.store.flush()
    const e = Buffer.alloc(8)
    e.writeUInt32BE(Math.floor(offset / 0x100000000), 0)
    e.writeUInt32BE(offset >>> 0, 4)
    await this.ctx.write(e, this.ctx.header.refcountTableOffset + i * 8)
    e.copy(this.reftable, i * 8)
    this.lastIndex = -1
    this.blocks.set(i, buf)
  }

  /** Write back every patched refcount block. */
  async flush (): Promise<void> {
    for (const i of [...this.dirty]) await this.writeBlock(i)
  }

  /** Forget cached blocks (after the structure was rewritten). */
  drop (): void {
    this.lastIndex = -1
    this.blocks.clear()
    this.dirty.clear()
  }
}
