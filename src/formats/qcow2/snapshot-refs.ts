// Reference counts of whole L1 trees, for internal snapshots.
//
// A cluster's refcount is the number of paths that reach it: every L1 table
// (the active one or a snapshot's) that points to an L2 table counts once
// for the table and once for each cluster the table's entries use, even when
// two L1 tables share the table. Taking a snapshot therefore adds one to
// everything the active L1 reaches, deleting one takes one away, and
// reverting to one does both. OFLAG_COPIED on L1 and L2 entries means
// "refcount exactly 1" (the write path then writes in place); a walk
// recomputes it in every table it visits, as qemu does.
//
// Increments go to the refcount blocks at once (they reach the disk before
// any table that relies on them); decrements are queued in the allocator and
// applied after the tables are on disk, so a crash leaks clusters at worst.
import { BlockError } from '../../cli/errors.js'
import { INCOMPAT_DATA_FILE } from './header.js'
import { L1E_OFFSET_MASK_HI, L1E_OFFSET_MASK_LO, OFLAG_COPIED_HI, entryOffset, l1ReservedBits } from './layout.js'
import { compressedClusters, hostOf, isCompressed, NO_HOST, readEntry, writeEntry } from './l2-entry.js'
import { punchFreeClusters } from './punch.js'
import type { Qcow2Image } from './driver.js'
import type { Qcow2Writer } from './write.js'

export class TreeRefcounts {
  /** decrements queued during this operation, not yet applied by the allocator */
  private readonly pending = new Map<number, number>()
  /**
   * clusters that lost a reference, in groups punched separately once free
   * (qemu merges the discards of one refcount update, not across them)
   */
  private groups: number[][] = [[]]
  /** increments made, in order (undone after a failure) */
  private readonly added: number[] = []

  constructor (private readonly img: Qcow2Image, private readonly w: Qcow2Writer) {}

  private get cs (): number { return this.img.geo.clusterSize }

  /** The refcount of host cluster `c` once the queued decrements are applied. */
  async value (c: number): Promise<number> {
    return (await this.w.refs.get(c)) - (this.pending.get(c) ?? 0)
  }

  /** Add +1 or -1 to cluster `c`; returns the resulting refcount. */
  async add (c: number, addend: number): Promise<number> {
    if (addend > 0) {
      const v = await this.value(c)
      if (v + 1 > this.w.refs.maxValue) throw new BlockError('Refcount overflow', 'EINVAL')
      await this.w.alloc.incref(c)
      this.added.push(c)
    } else if (addend < 0) {
      if (await this.value(c) <= 0) throw this.img.corruption(`Refcount of cluster 0x${c.toString(16)} dropped below zero`)
      this.w.alloc.decref(c)
      this.pending.set(c, (this.pending.get(c) ?? 0) + 1)
      this.groups[this.groups.length - 1].push(c)
    }
    return this.value(c)
  }

  /** Drop one reference to each cluster of the byte range [offset, offset+bytes) (a group of its own). */
  async release (offset: number, bytes: number): Promise<void> {
    if (offset === 0 || bytes <= 0) return
    this.nextGroup()
    const first = Math.floor(offset / this.cs)
    const last = Math.floor((offset + bytes - 1) / this.cs)
    for (let c = first; c <= last; c++) await this.add(c, -1)
    this.nextGroup()
  }

  /** Later frees are punched apart from earlier ones. */
  nextGroup (): void {
    if (this.groups[this.groups.length - 1].length > 0) this.groups.push([])
  }

  /** Undo the increments (in memory; nothing of them has been written yet). */
  async rollback (): Promise<void> {
    for (const c of this.added.reverse()) await this.w.refs.set(c, (await this.w.refs.get(c)) - 1)
    this.added.length = 0
  }

  /**
   * Add `addend` to every cluster `l1` reaches and recompute OFLAG_COPIED in
   * `l1` (changed in place) and in its L2 tables (changed tables are handed to
   * the writer, which writes them with the next flush; tables whose count
   * drops to zero are dropped). Returns the indices of the changed L1 entries.
   * `flags: false` leaves OFLAG_COPIED in the L2 tables alone.
   */
  async walk (l1: Buffer, addend: -1 | 0 | 1, flags = true): Promise<number[]> {
    this.nextGroup()
    const g = this.img.geo
    const cs = g.clusterSize
    const external = (this.img.header.incompatible & INCOMPAT_DATA_FILE) !== 0n
    const changedL1: number[] = []
    for (let i = 0; i < l1.length / 8; i++) {
      const hi = l1.readUInt32BE(i * 8)
      const lo = l1.readUInt32BE(i * 8 + 4)
      const l2Offset = entryOffset(hi, lo)
      if (l2Offset === 0) continue
      if (l1ReservedBits(hi, lo) || l2Offset % cs !== 0) {
        throw this.img.corruption(`L2 table offset 0x${l2Offset.toString(16)} unaligned (L1 index: 0x${i.toString(16)})`)
      }
      let table: Buffer | null = null
      const current = await this.img.getL2(l2Offset, i)
      for (let j = 0; j < g.l2Entries; j++) {
        const e = readEntry(table ?? current, j, g)
        if (isCompressed(e)) {
          if (addend !== 0) for (const c of compressedClusters(e, g)) await this.add(c, addend)
          continue
        }
        const host = hostOf(e, external)
        // an external data file has no refcounts for data clusters
        if (host === NO_HOST || external) continue
        if (host % cs !== 0) {
          throw this.img.corruption(`Cluster allocation offset 0x${host.toString(16)} unaligned (L2 offset: 0x${l2Offset.toString(16)}, L2 index: 0x${j.toString(16)})`)
        }
        const v = addend === 0 ? await this.value(host / cs) : await this.add(host / cs, addend)
        const hiNew = (v === 1 ? e.hi | OFLAG_COPIED_HI : e.hi & ~OFLAG_COPIED_HI) >>> 0
        if (flags && hiNew !== e.hi) {
          table ??= Buffer.from(current)
          writeEntry(table, j, g, { ...e, hi: hiNew })
        }
      }
      const tableRefs = addend === 0 ? await this.value(l2Offset / cs) : await this.add(l2Offset / cs, addend)
      if (tableRefs === 0) {
        this.w.forgetTable(l2Offset)
      } else if (table) {
        this.w.tables.set(l2Offset, table)
      }
      const l1Hi = ((hi & (L1E_OFFSET_MASK_HI)) | (tableRefs === 1 ? OFLAG_COPIED_HI : 0)) >>> 0
      if (l1Hi !== hi) {
        l1.writeUInt32BE(l1Hi, i * 8)
        l1.writeUInt32BE((lo & L1E_OFFSET_MASK_LO) >>> 0, i * 8 + 4)
        changedL1.push(i)
      }
    }
    return changedL1
  }

  /** Write everything in crash-safe order; the queued decrements are applied. */
  async flush (): Promise<void> {
    await this.w.flushMetadata()
    this.pending.clear()
  }

  /**
   * After the last flush: give the space of clusters that became free back
   * to the file system (qemu passes discards of snapshot operations down to
   * the file by default).
   */
  async punchFreed (): Promise<void> {
    for (const group of this.groups) await punchFreeClusters(this.img.store, this.w.refs, group)
    this.groups = [[]]
  }
}
