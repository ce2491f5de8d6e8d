// Host cluster allocation for a writable qcow2 image: first-fit search over
// the refcounts, creation of refcount blocks (which describe themselves when
// they land in their own range), growth of the refcount table, byte-granular
// allocation for compressed clusters, and deferred frees.
//
// Crash safety: increments are made in memory and reach the disk (through
// RefcountTable.writeDirty) before any L2 entry that uses them. Decrements
// are only *queued* here and applied by `applyDeferred` after the L2/L1
// updates that dropped the references are on disk, so a freed cluster is
// never reused while an on-disk table may still point to it.
import type { ByteStore } from '../../io/byte-store.js'
import type { RefcountTable } from './refcount-table.js'
import { getRefcount, setRefcount } from './refcount.js'

export interface AllocatorHost {
  readonly store: ByteStore
  readonly refs: RefcountTable
  /** record a moved refcount table in the header (written and flushed by the callee) */
  writeRefcountTableLocation (offset: number, clusters: number): Promise<void>
}

export class ClusterAllocator {
  /**
   * where the next search for free clusters starts: past the last run
   * allocated (holes skipped on the way are not revisited until something
   * is freed), as qemu's free_cluster_index
   */
  private freeIndex = 0
  /** one past the highest cluster this session allocated */
  private top = 0
  private readonly pending = new Map<number, number>()
  /** where the next compressed cluster's bytes may go (0: start a new cluster) */
  private compressedCursor = 0

  constructor (private readonly host: AllocatorHost) {}

  private get refs (): RefcountTable { return this.host.refs }
  private get cs (): number { return this.refs.clusterSize }

  /** Allocate `n` contiguous clusters with refcount 1; returns the host byte offset. */
  async allocate (n: number): Promise<number> {
    const refs = this.refs
    for (;;) {
      const c = await this.findFreeRun(n)
      const b0 = Math.floor(c / refs.perBlock)
      const b1 = Math.floor((c + n - 1) / refs.perBlock)
      if (b1 >= refs.entries.length) {
        await this.growTable(b1 + 1, c + n)
        continue
      }
      let missing = -1
      for (let b = b0; b <= b1 && missing < 0; b++) if (refs.entries[b] === 0) missing = b
      if (missing >= 0) {
        // as qemu: the run is reserved first, the block goes after it, and the
        // search starts again at the run
        await this.createBlock(missing, c + n)
        this.freeIndex = c
        continue
      }
      await refs.setRange(c, n, 1)
      this.noteUsed(c, n)
      return c * this.cs
    }
  }

  /**
   * Create refcount block `b` in the first free cluster at or after `from`:
   * it describes itself when it lands in its own range, else the block of
   * its range counts it (created first when missing).
   */
  private async createBlock (b: number, from: number): Promise<void> {
    const refs = this.refs
    for (;;) {
      const pos = await this.findFreeRun(1, from)
      const own = Math.floor(pos / refs.perBlock)
      if (own >= refs.entries.length) {
        await this.growTable(own + 1, pos + 1)
        continue
      }
      if (own !== b && refs.entries[own] === 0) {
        await this.createBlock(own, pos + 1)
        continue
      }
      refs.addBlock(b, pos * this.cs)
      await refs.set(pos, 1)
      this.top = Math.max(this.top, pos + 1)
      return
    }
  }

  private noteUsed (c: number, n: number): void {
    this.freeIndex = c + n
    this.top = Math.max(this.top, c + n)
  }

  /** First run of `n` clusters with refcount 0 at or after `from` (default: freeIndex). */
  private async findFreeRun (n: number, from = this.freeIndex): Promise<number> {
    const refs = this.refs
    const per = refs.perBlock
    let c = Math.max(from, this.freeIndex)
    let start = c
    let len = 0
    while (len < n) {
      const b = Math.floor(c / per)
      const blockEnd = (b + 1) * per
      const buf = await refs.block(b)
      if (!buf) { // no block: every cluster it would describe is free
        if (len === 0) start = c
        len += blockEnd - c
        c = blockEnd
        continue
      }
      for (; c < blockEnd && len < n; c++) {
        if (getRefcount(buf, c - b * per, refs.order) === 0) {
          if (len === 0) start = c
          len++
        } else {
          len = 0
        }
      }
    }
    return start
  }

  /**
   * Move the refcount table to a bigger place at the end of the used area.
   * The new table and the refcount blocks it needs for its own clusters are
   * written before the header points to them; the old table is freed later.
   */
  private async growTable (minEntries: number, avoidEnd: number): Promise<void> {
    const refs = this.refs
    const cs = this.cs
    const per = refs.perBlock
    const fileClusters = Math.ceil((await this.host.store.size()) / cs)
    const start = Math.max(this.top, fileClusters, avoidEnd)
    let count = Math.max(minEntries, Math.ceil(refs.entries.length * 3 / 2), cs / 8)
    let tableClusters: number
    let newBlocks: number[]
    for (;;) {
      tableClusters = Math.ceil(count * 8 / cs)
      newBlocks = []
      // blocks needed to describe the table and the new blocks themselves
      for (;;) {
        const end = start + tableClusters + newBlocks.length
        const missing: number[] = []
        for (let b = Math.floor(start / per); b <= Math.floor((end - 1) / per); b++) {
          if (b >= refs.entries.length || refs.entries[b] === 0) missing.push(b)
        }
        if (missing.length === newBlocks.length) { newBlocks = missing; break }
        newBlocks = missing
      }
      const maxIndex = Math.floor((start + tableClusters + newBlocks.length - 1) / per)
      if (maxIndex < count) break
      count = maxIndex + 1
    }
    // everything queued for the old table reaches it first
    await refs.writeDirty()
    const entries = refs.entries.slice()
    while (entries.length < tableClusters * cs / 8) entries.push(0)
    const blockAt = new Map<number, Buffer>()
    newBlocks.forEach((b, k) => {
      entries[b] = (start + tableClusters + k) * cs
      blockAt.set(b, Buffer.alloc(cs))
    })
    const oldOffset = refs.tableOffset
    const oldClusters = refs.tableClusters
    // the new structures' own refcounts: in new blocks, or in existing ones
    const used = tableClusters + newBlocks.length
    for (let c = start; c < start + used; c++) {
      const b = Math.floor(c / per)
      const nb = blockAt.get(b)
      if (nb) {
        setRefcount(nb, c - b * per, refs.order, 1)
      } else {
        await refs.set(c, 1)
      }
    }
    await refs.writeDirty()
    for (const [b, buf] of blockAt) await this.host.store.write(buf, entries[b])
    await this.host.store.write(refs.encodeTable(entries, tableClusters), start * cs)
    await this.host.store.flush()
    await this.host.writeRefcountTableLocation(start * cs, tableClusters)
    refs.moveTable(start * cs, tableClusters, entries)
    for (const [b, buf] of blockAt) refs.adoptBlock(b, buf)
    this.top = Math.max(this.top, start + used)
    for (let i = 0; i < oldClusters; i++) this.decref(oldOffset / cs + i)
  }

  /** One past the last cluster with a reference, in bytes (where a shrunk file may end). */
  async usedEnd (): Promise<number> {
    const refs = this.refs
    for (let b = refs.entries.length - 1; b >= 0; b--) {
      const buf = await refs.block(b)
      if (!buf) continue
      for (let i = refs.perBlock - 1; i >= 0; i--) {
        if (getRefcount(buf, i, refs.order) !== 0) return (b * refs.perBlock + i + 1) * this.cs
      }
    }
    return this.cs
  }

  /** One more reference to an allocated cluster (compressed clusters sharing a host cluster). */
  async incref (cluster: number): Promise<void> {
    const v = await this.refs.get(cluster)
    await this.refs.set(cluster, v + 1)
  }

  /** Queue dropping one reference; applied by applyDeferred after the tables are on disk. */
  decref (cluster: number, count = 1): void {
    this.pending.set(cluster, (this.pending.get(cluster) ?? 0) + count)
  }

  get hasDeferred (): boolean { return this.pending.size > 0 }

  /** Apply queued decrements (in memory; the caller writes the refcounts). Returns underflows. */
  async applyDeferred (): Promise<number[]> {
    const items = [...this.pending].sort((a, b) => a[0] - b[0])
    this.pending.clear()
    const underflow: number[] = []
    for (const [c, n] of items) {
      const v = await this.refs.get(c)
      if (v < n) underflow.push(c)
      const nv = Math.max(v - n, 0)
      await this.refs.set(c, nv)
      if (nv === 0) {
        if (c < this.freeIndex) this.freeIndex = c
        if (Math.floor(this.compressedCursor / this.cs) === c) this.compressedCursor = 0
      }
    }
    return underflow
  }

  /**
   * Room for `size` bytes of compressed data (size < cluster size): packed
   * right after the previous compressed cluster when it fits (or when the
   * next allocated cluster is contiguous), as qemu packs them. Every host
   * cluster the bytes touch gets one reference.
   */
  async allocateBytes (size: number): Promise<number> {
    const cs = this.cs
    let cur = this.compressedCursor
    if (cur !== 0 && cur % cs === 0) cur = 0
    if (cur !== 0) {
      const cluster = Math.floor(cur / cs)
      const room = (cluster + 1) * cs - cur
      if (await this.refs.get(cluster) < this.refs.maxValue) {
        if (size <= room) {
          await this.incref(cluster)
          this.compressedCursor = cur + size
          return cur
        }
        const next = await this.allocate(1)
        if (next === (cluster + 1) * cs) {
          await this.incref(cluster)
          this.compressedCursor = cur + size
          return cur
        }
        this.compressedCursor = next + size
        return next
      }
    }
    const fresh = await this.allocate(1)
    this.compressedCursor = fresh + size
    return fresh
  }
}
