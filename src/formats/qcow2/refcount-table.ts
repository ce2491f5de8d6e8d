// The refcount structures of a writable qcow2 image, held in memory:
// the refcount table (block offsets) and the refcount blocks that have been
// touched. Changes stay in memory (dirty) until `writeDirty`, which the
// writer calls in crash-safe order (refcounts before the L2 tables that
// depend on them). Nothing here decides *which* clusters to use: that is
// the allocator's job.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import { readU64, writeU64 } from './header.js'
import { getRefcount, maxRefcount, refcountBlockEntries, setRefcount } from './refcount.js'

/** bits 9..55: the only bits a refcount table entry may use */
const OFFSET_LIMIT = 2 ** 56

export class RefcountTable {
  /** block offsets by block index (0 = no block) */
  entries: number[]
  private readonly blocks = new Map<number, Buffer>()
  private readonly dirtyBlocks = new Set<number>()
  private readonly dirtyEntries = new Set<number>()
  readonly perBlock: number
  readonly maxValue: number
  readonly clusterSize: number

  constructor (
    private readonly store: ByteStore,
    readonly clusterBits: number,
    readonly order: number,
    public tableOffset: number,
    public tableClusters: number,
    entries: number[],
    /** reports corruption (marks the image corrupt) and returns the error to throw */
    private readonly corrupt: (message: string) => BlockError,
  ) {
    this.entries = entries
    this.clusterSize = 2 ** clusterBits
    this.perBlock = refcountBlockEntries(clusterBits, order)
    this.maxValue = maxRefcount(order)
  }

  static async load (store: ByteStore, clusterBits: number, order: number, tableOffset: number, tableClusters: number,
    corrupt: (message: string) => BlockError): Promise<RefcountTable> {
    const cs = 2 ** clusterBits
    const raw = Buffer.alloc(tableClusters * cs)
    await store.read(raw, tableOffset)
    const entries: number[] = new Array(raw.length / 8)
    for (let i = 0; i < entries.length; i++) entries[i] = readU64(raw, i * 8)
    return new RefcountTable(store, clusterBits, order, tableOffset, tableClusters, entries, corrupt)
  }

  /** Block index and entry index of a host cluster. */
  locate (cluster: number): { block: number, index: number } {
    return { block: Math.floor(cluster / this.perBlock), index: cluster % this.perBlock }
  }

  /** Clusters the current table can describe. */
  get capacityClusters (): number { return this.entries.length * this.perBlock }

  /** The refcount block with index `b`, loaded on first use; null when the table has none. */
  async block (b: number): Promise<Buffer | null> {
    const cached = this.blocks.get(b)
    if (cached) return cached
    if (b >= this.entries.length) return null
    const off = this.entries[b]
    if (off === 0) return null
    if (!Number.isFinite(off) || off >= OFFSET_LIMIT || off % this.clusterSize !== 0) {
      throw this.corrupt(`Refblock offset 0x${off.toString(16)} unaligned (reftable index: 0x${b.toString(16)})`)
    }
    const buf = Buffer.alloc(this.clusterSize)
    await this.store.read(buf, off)
    // a concurrent loader may have won while we read
    const again = this.blocks.get(b)
    if (again) return again
    this.blocks.set(b, buf)
    return buf
  }

  async get (cluster: number): Promise<number> {
    const { block, index } = this.locate(cluster)
    const buf = await this.block(block)
    return buf ? getRefcount(buf, index, this.order) : 0
  }

  /** Set a refcount; the block must exist (the allocator creates blocks first). */
  set (cluster: number, value: number): Promise<void> {
    return this.setRange(cluster, 1, value)
  }

  /**
   * Set the refcounts of clusters [first, first + count) to `value`; their
   * blocks must exist. One lookup per block, not per cluster: an allocating
   * write takes dozens of clusters at once.
   */
  async setRange (first: number, count: number, value: number): Promise<void> {
    if (value < 0 || value > this.maxValue) throw new BlockError('Refcount overflow', 'ERANGE')
    const per = this.perBlock
    for (let c = first; c < first + count;) {
      const b = Math.floor(c / per)
      const buf = this.blocks.get(b) ?? await this.block(b)
      if (!buf) throw new BlockError(`internal: no refcount block for cluster ${c}`, 'EIO')
      const stop = Math.min(first + count, (b + 1) * per)
      for (; c < stop; c++) setRefcount(buf, c - b * per, this.order, value)
      this.dirtyBlocks.add(b)
    }
  }

  /** Install a new (zeroed) refcount block for block index `b` at `offset`. */
  addBlock (b: number, offset: number): Buffer {
    const buf = Buffer.alloc(this.clusterSize)
    this.blocks.set(b, buf)
    this.entries[b] = offset
    this.dirtyBlocks.add(b)
    this.dirtyEntries.add(b)
    return buf
  }

  /** Take a block written by the caller (a moved table's new blocks) as clean. */
  adoptBlock (b: number, buf: Buffer): void {
    this.blocks.set(b, buf)
  }

  get dirty (): boolean { return this.dirtyBlocks.size > 0 || this.dirtyEntries.size > 0 }
  get dirtyBlockCount (): number { return this.dirtyBlocks.size }

  /** Write dirty blocks, then the table entries that point to new blocks. */
  async writeDirty (): Promise<void> {
    const blocks = [...this.dirtyBlocks].sort((a, b) => a - b)
    this.dirtyBlocks.clear()
    for (const b of blocks) await this.store.write(this.blocks.get(b)!, this.entries[b])
    if (this.dirtyEntries.size === 0) return
    const idx = [...this.dirtyEntries].sort((a, b) => a - b)
    this.dirtyEntries.clear()
    // write each run of changed entries in one piece
    for (let i = 0; i < idx.length;) {
      let j = i + 1
      while (j < idx.length && idx[j] === idx[j - 1] + 1) j++
      const buf = Buffer.alloc((j - i) * 8)
      for (let k = i; k < j; k++) writeU64(buf, (k - i) * 8, this.entries[idx[k]])
      await this.store.write(buf, this.tableOffset + idx[i] * 8)
      i = j
    }
  }

  /** Replace the table (after it moved): the caller has written it and updated the header. */
  moveTable (offset: number, clusters: number, entries: number[]): void {
    this.tableOffset = offset
    this.tableClusters = clusters
    this.entries = entries
    this.dirtyEntries.clear()
  }

  /** The table as it would be written at its current size (for moving it). */
  encodeTable (entries: number[], clusters: number): Buffer {
    const buf = Buffer.alloc(clusters * this.clusterSize)
    for (let i = 0; i < entries.length; i++) writeU64(buf, i * 8, entries[i])
    return buf
  }

  /** Forget cached blocks (they are re-read on demand). Only when nothing is dirty. */
  dropClean (): void {
    for (const b of [...this.blocks.keys()]) if (!this.dirtyBlocks.has(b)) this.blocks.delete(b)
  }
}
