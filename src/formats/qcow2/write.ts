// The qcow2 write path: guest writes, zero writes, discards and compressed
// writes of one image, with copy-on-write from the backing chain and from
// snapshots.
//
// Metadata lives in memory while it changes (L2 tables in `tables`, the L1
// table in the image's buffer, refcounts in RefcountTable) and reaches the
// disk in `flushMetadata`, in the order that keeps a crash harmless:
//   new L2 tables, refcounts, fsync → changed L2 tables, L1, fsync → frees.
// Data is written before the L2 entry that points to it is even changed in
// memory, so a crash leaves at worst leaked clusters.
//
// Concurrency: plan and link steps (which read and change metadata) run
// under one mutex per image; the data I/O between them runs in parallel.
// A guest cluster being allocated is marked in `inflight` so that a second
// write into it waits and then sees the allocation.
import { BlockError } from '../../cli/errors.js'
import { Mutex } from '../../block/mutex.js'
import type { ByteStore } from '../../io/byte-store.js'
import type { WriteHooks, WriteZeroesOptions } from '../../block/types.js'
import { ClusterAllocator } from './allocator.js'
import { RefcountTable } from './refcount-table.js'
import { punchFreeClusters } from './punch.js'
import {
  AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_DIRTY,
} from './header.js'
import { writeHeaderIncompatible, writeHeaderRefcountTable } from './header-update.js'
import { encodeCompressed, entryOffset, OFLAG_COPIED_HI, type Geometry } from './layout.js'
import {
  ALL_SUBCLUSTERS, EMPTY_ENTRY, compressedClusters, compressedEntry, hasZeroFlag, hostOf, isCompressed, isCopied,
  isUnallocated, NO_HOST, plainEntry, readEntry, subclusterMask, writeEntry, type L2Entry,
} from './l2-entry.js'
import type { Qcow2Image } from './driver.js'

/** Compression (and with it node:zlib and its streams) is loaded by the first compressed write. */
let compressWrite: Promise<typeof import('./compress-write.js')> | undefined
const loadCompressWrite = (): Promise<typeof import('./compress-write.js')> => (compressWrite ??= import('./compress-write.js'))

/** Dirty L2 tables are written out once this many are held. */
const MAX_DIRTY_TABLES = 64

/** `job` as a plain overwrite of bytes a..b of its own host cluster */
function inPlace (job: ClusterJob, host: number, a: number, b: number): ClusterJob {
  job.r0 = a
  job.r1 = b
  job.host = host
  job.inPlace = true
  return job
}

interface ClusterJob {
  /** guest cluster index */
  gc: number
  /** the written bytes' range inside the cluster */
  a: number
  b: number
  /** range written to the host cluster (a..b plus copied-on-write padding) */
  r0: number
  r1: number
  host: number
  /** a new host cluster (refcount taken here) */
  fresh: boolean
  /** plain overwrite: no metadata change */
  inPlace: boolean
  /** extended L2: subclusters that become allocated */
  mask: number
  old: L2Entry
}

interface WritePlan { jobs: ClusterJob[], release: () => void }

type Planned = WritePlan | { wait: Promise<void> }

export class Qcow2Writer {
  readonly mutex = new Mutex()
  readonly refs: RefcountTable
  readonly alloc: ClusterAllocator
  /** L2 tables changed in memory, by offset (readers see them through the image) */
  readonly tables = new Map<number, Buffer>()
  /** of those, tables no on-disk L1 entry points to yet */
  private readonly freshTables = new Set<number>()
  private readonly l1Dirty = new Set<number>()
  private readonly inflight = new Map<number, Promise<void>>()
  /** reads and in-place writes under way (frees wait for them) */
  private readonly dataIO = new Set<Promise<unknown>>()
  /**
   * clusters whose space goes back to the file system once they are free,
   * one group per request (qemu merges the discards of one request only)
   */
  private punchGroups: number[][] = []
  private readonly idlePunchGroups = new WeakSet<number[]>()
  private dirtyBitSet = false
  private broken = false
  private metadata: Map<number, string> | null = null

  private constructor (readonly img: Qcow2Image, refs: RefcountTable) {
    this.refs = refs
    this.externalData = (img.header.incompatible & INCOMPAT_DATA_FILE) !== 0n
    this.alloc = new ClusterAllocator({
      store: img.store,
      refs,
      writeRefcountTableLocation: (off, n) => writeHeaderRefcountTable(img.store, img.header, off, n),
    })
  }

  static async open (img: Qcow2Image): Promise<Qcow2Writer> {
    const h = img.header
    const refs = await RefcountTable.load(img.store, h.clusterBits, h.refcountOrder, h.refcountTableOffset,
      h.refcountTableClusters, (m) => img.corruption(m))
    return new Qcow2Writer(img, refs)
  }

  private get g (): Geometry { return this.img.geo }
  private get cs (): number { return this.img.geo.clusterSize }
  private get dataStore (): ByteStore { return this.img.shared.dataStore }
  /** data clusters live in an external file at their guest offsets, without refcounts */
  /** (a field, not a getter: it is asked per cluster, and the bit is fixed for an open image) */
  private readonly externalData: boolean
  private get dataRaw (): boolean { return (this.img.header.autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n }
  private get v3 (): boolean { return this.img.header.version >= 3 }

  /** Track a read or in-place write so that frees wait for it. */
  track<T> (p: Promise<T>): Promise<T> {
    this.dataIO.add(p)
    const done = (): void => { this.dataIO.delete(p) }
    p.then(done, done)
    return p
  }

  private checkUsable (): void {
    if (this.broken) throw new BlockError('Image is corrupt; writes are refused', 'EIO')
  }

  /**
   * qemu's reaction to corruption found while writing: set the corrupt bit
   * (version 3) so the image is not opened read-write again until repaired.
   */
  async markCorrupt (message: string): Promise<void> {
    if (this.broken) return
    this.broken = true
    this.img.shared.warn(`qcow2: Marking image as corrupt: ${message}; further corruption events will be suppressed\n`)
    this.img.shared.corruptionReported = true
    const h = this.img.header
    await writeHeaderIncompatible(this.img.store, h, h.incompatible | INCOMPAT_CORRUPT).catch(() => undefined)
  }

  /** lazy_refcounts: the dirty bit goes on before the first change reaches the disk. */
  private async ensureDirtyBit (): Promise<void> {
    const h = this.img.header
    if (this.dirtyBitSet || !(h.compatible & COMPAT_LAZY_REFCOUNTS) || h.version < 3) return
    await this.mutex.run(async () => {
      if (this.dirtyBitSet) return
      await writeHeaderIncompatible(this.img.store, h, h.incompatible | INCOMPAT_DIRTY)
      this.dirtyBitSet = true
    })
  }

  // ---- guest writes ------------------------------------------------------

  async write (buf: Buffer, offset: number, hooks?: WriteHooks): Promise<void> {
    this.checkUsable()
    if (buf.length === 0) return
    const crypto = this.img.shared.crypto
    if (crypto) {
      if (!crypto.canIO) throw new BlockError('Cannot write encrypted data without a key', 'EACCES')
      // encryption works on whole 512-byte sectors: complete partial ones from the current contents
      const a = Math.floor(offset / 512) * 512
      const b = Math.ceil((offset + buf.length) / 512) * 512
      if (a !== offset || b !== offset + buf.length) {
        const whole = Buffer.alloc(b - a)
        await this.readGuest(whole.subarray(0, 512), a)
        if (b - 512 > a) await this.readGuest(whole.subarray(whole.length - 512), b - 512)
        buf.copy(whole, offset - a)
        buf = whole
        offset = a
      }
    }
    await this.ensureDirtyBit()
    const end = offset + buf.length
    // a write inside one L2 table allocates in one step: it can tell when (WriteHooks)
    const onAllocated = !crypto && this.g.l1Index(offset) === this.g.l1Index(end - 1) ? hooks?.onAllocated : undefined
    let pos = offset
    while (pos < end) {
      const stop = Math.min(end, (this.g.l1Index(pos) + 1) * this.g.l2Coverage)
      await this.writeChunk(buf.subarray(pos - offset, stop - offset), pos, onAllocated)
      pos = stop
    }
  }

  /** Read the guest view, clipped to the image size (zeros beyond). */
  private async readGuest (buf: Buffer, offset: number): Promise<void> {
    const inside = Math.max(0, Math.min(buf.length, this.img.size - offset))
    if (inside > 0) await this.img.read(buf.subarray(0, inside), offset)
    buf.fill(0, inside)
  }

  /** Wait until no cluster in [gc0, gc1] is being allocated; returns a promise to wait on, or null. */
  private busy (gc0: number, gc1: number): Promise<void> | null {
    if (this.inflight.size === 0) return null
    for (let gc = gc0; gc <= gc1; gc++) {
      const p = this.inflight.get(gc)
      if (p) return p
    }
    return null
  }

  private claim (gcs: number[]): () => void {
    let resolve!: () => void
    const p = new Promise<void>(r => { resolve = r })
    for (const gc of gcs) this.inflight.set(gc, p)
    return () => {
      for (const gc of gcs) if (this.inflight.get(gc) === p) this.inflight.delete(gc)
      resolve()
    }
  }

  /** The L2 table for L1 index `l1i` as it is now (dirty copy, cached, or null). */
  async currentTable (l1i: number): Promise<Buffer | null> {
    const off = this.img.l2OffsetAt(l1i)
    if (off === 0) return null
    return this.img.getL2(off, l1i)
  }

  /** One write inside a single L2 table's range. */
  private async writeChunk (data: Buffer, offset: number, onAllocated?: () => void): Promise<void> {
    let plan: WritePlan
    for (;;) {
      const p = await this.mutex.run(() => this.planWrite(data, offset))
      if ('wait' in p) { await p.wait; continue }
      plan = p
      break
    }
    // its clusters are taken (and claimed): a following write may plan now
    onAllocated?.()
    try {
      await this.execute(plan, data, offset)
      if (plan.jobs.some(j => !j.inPlace)) await this.mutex.run(() => this.link(plan.jobs))
    } catch (e) {
      // the clusters taken for this write are not referenced: give them back
      for (const j of plan.jobs) if (j.fresh && !this.externalData) this.alloc.decref(j.host / this.cs)
      throw e
    } finally {
      plan.release()
    }
  }

  private async planWrite (data: Buffer, offset: number): Promise<Planned> {
    this.checkUsable()
    const g = this.g
    const cs = g.clusterSize
    const end = offset + data.length
    const gc0 = Math.floor(offset / cs)
    const gc1 = Math.floor((end - 1) / cs)
    const wait = this.busy(gc0, gc1)
    if (wait) return { wait }
    const l1i = g.l1Index(offset)
    const table = await this.currentTable(l1i)
    const jobs: ClusterJob[] = []
    let need = 0
    for (let gc = gc0; gc <= gc1; gc++) {
      const a = Math.max(offset, gc * cs) - gc * cs
      const b = Math.min(end, (gc + 1) * cs) - gc * cs
      const old = table ? readEntry(table, g.l2Index(gc * cs), g) : EMPTY_ENTRY
      const job = this.planCluster(gc, a, b, old)
      if (job.fresh) need++
      jobs.push(job)
    }
    // the L2 table comes first (allocated or copied now, as qemu does), so
    // that data clusters are placed after it
    if (jobs.some(j => !j.inPlace)) await this.tableForWrite(l1i)
    // new host clusters, contiguous where possible (so neighbouring clusters coalesce)
    if (need > 0 && !this.externalData) {
      let next = await this.alloc.allocate(need)
      this.invalidateMetadata()
      for (const j of jobs) if (j.fresh) { j.host = next; next += cs }
    }
    await this.checkHosts(jobs)
    const claimed = jobs.filter(j => !j.inPlace).map(j => j.gc)
    const release = claimed.length > 0 ? this.claim(claimed) : () => undefined
    return { jobs, release }
  }

  // (one job object per cluster, filled in place: an allocating write plans
  // thousands of clusters, and each copy was garbage for the collector)
  private planCluster (gc: number, a: number, b: number, old: L2Entry): ClusterJob {
    const g = this.g
    const cs = g.clusterSize
    const job: ClusterJob = { gc, a, b, r0: 0, r1: cs, host: 0, fresh: false, inPlace: false, mask: ALL_SUBCLUSTERS, old }
    const host = hostOf(old, this.externalData)
    const ownHost = host !== NO_HOST && (isCopied(old) || this.externalData)
    if (!g.extendedL2) {
      if (ownHost && !hasZeroFlag(old)) return inPlace(job, host, a, b)
      if (ownHost) { job.host = host; return job } // preallocated zero cluster: fill it, drop the flag
      return this.freshHost(job)
    }
    const s0 = Math.floor(a / g.subclusterSize)
    const s1 = Math.floor((b - 1) / g.subclusterSize)
    const mask = subclusterMask(s0, s1)
    if (!isCompressed(old) && ownHost) {
      job.mask = mask
      if ((old.bmLo & mask) >>> 0 === mask) return inPlace(job, host, a, b)
      job.r0 = s0 * g.subclusterSize
      job.r1 = (s1 + 1) * g.subclusterSize
      job.host = host
      return job
    }
    if (isCompressed(old) || host !== NO_HOST) return this.freshHost(job) // copy the whole cluster
    job.r0 = s0 * g.subclusterSize
    job.r1 = (s1 + 1) * g.subclusterSize
    job.mask = mask
    return this.freshHost(job)
  }

  private freshHost (job: ClusterJob): ClusterJob {
    if (this.externalData) job.host = job.gc * this.cs
    job.fresh = true
    return job
  }

  /** Refuse data writes into metadata (a hostile or damaged L2 entry), as qemu's overlap check does. */
  private async checkHosts (jobs: ClusterJob[]): Promise<void> {
    if (this.externalData) return
    for (const j of jobs) {
      if (j.fresh) continue
      if (j.host < this.cs || j.host % this.cs !== 0) {
        await this.markCorrupt(`Preventing invalid write on metadata (overlaps with qcow2_header)`)
        throw new BlockError('Input/output error', 'EIO')
      }
      const overlap = this.metadataOverlap(j.host / this.cs)
      if (overlap) {
        await this.markCorrupt(`Preventing invalid write on metadata (overlaps with ${overlap})`)
        throw new BlockError('Input/output error', 'EIO')
      }
    }
  }

  /** Which metadata structure (if any) cluster `c` holds. */
  private metadataOverlap (c: number): string | null {
    if (!this.metadata) this.metadata = this.collectMetadata()
    return this.metadata.get(c) ?? null
  }

  /** Host clusters holding metadata, for the overlap check (rebuilt after allocations). */
  private collectMetadata (): Map<number, string> {
    const cs = this.cs
    const h = this.img.header
    const m = new Map<number, string>()
    const range = (off: number, bytes: number, name: string): void => {
      for (let c = Math.floor(off / cs); c < Math.ceil((off + bytes) / cs); c++) m.set(c, name)
    }
    m.set(0, 'qcow2_header')
    range(h.l1TableOffset, h.l1Size * 8, 'active L1 table')
    range(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table')
    for (const off of this.refs.entries) if (off !== 0 && Number.isFinite(off)) m.set(off / cs, 'refcount block')
    for (let i = 0; i < this.img.l1.length / 8; i++) {
      const off = this.img.l2OffsetAt(i)
      if (off !== 0) m.set(Math.floor(off / cs), 'active L2 table')
    }
    if (h.nbSnapshots > 0) range(h.snapshotsOffset, 40 * h.nbSnapshots, 'snapshot table')
    if (h.bitmapsExt) range(h.bitmapsExt.directoryOffset, h.bitmapsExt.directorySize, 'bitmap directory')
    return m
  }

  /** Forget the metadata map (new tables or blocks were placed). */
  invalidateMetadata (): void { this.metadata = null }

  /** Write the data of a plan: in-place pieces and (copied-on-write) new clusters. */
  private async execute (plan: WritePlan, data: Buffer, offset: number): Promise<void> {
    const cs = this.cs
    // one piece per run of clusters contiguous on the host whose bytes come
    // straight from `data` (`at`: where in it), or one per copied-on-write cluster (`buf`)
    const merged: Array<{ host: number, guest: number, length: number, at: number, buf?: Buffer }> = []
    for (const j of plan.jobs) {
      const at = j.gc * cs + j.a - offset
      if (j.r0 === j.a && j.r1 === j.b) {
        const last = merged[merged.length - 1]
        if (last && !last.buf && last.host + last.length === j.host + j.r0 && last.at + last.length === at) {
          last.length += j.b - j.a
        } else {
          merged.push({ host: j.host + j.r0, guest: j.gc * cs + j.r0, length: j.b - j.a, at })
        }
        continue
      }
      // copy-on-write: the rest of the region keeps what the guest sees now
      const buf = Buffer.alloc(j.r1 - j.r0)
      if (j.a > j.r0) await this.readGuest(buf.subarray(0, j.a - j.r0), j.gc * cs + j.r0)
      if (j.r1 > j.b) await this.readGuest(buf.subarray(j.b - j.r0), j.gc * cs + j.b)
      data.copy(buf, j.a - j.r0, at, at + j.b - j.a)
      merged.push({ host: j.host + j.r0, guest: j.gc * cs + j.r0, length: buf.length, at, buf })
    }
    const crypto = this.img.shared.crypto
    const io = Promise.all(merged.map(async p => {
      let out = p.buf ?? data.subarray(p.at, p.at + p.length)
      if (crypto) {
        out = Buffer.from(out)
        crypto.encrypt(out, crypto.physicalIV ? p.host : p.guest)
      }
      await this.dataStore.write(out, p.host)
    }))
    // in-place writes land in clusters a concurrent discard may free: frees wait for them
    await this.track(io)
  }

  /** Point the L2 entries at the clusters a plan wrote. Runs under the mutex. */
  private async link (jobs: ClusterJob[]): Promise<void> {
    const g = this.g
    const table = await this.tableForWrite(g.l1Index(jobs[0].gc * g.clusterSize))
    for (const j of jobs) {
      if (j.inPlace) continue
      const idx = g.l2Index(j.gc * g.clusterSize)
      const old = readEntry(table, idx, g)
      this.dropReference(old, j.host)
      // extended L2: a partly filled cluster keeps its other subclusters' state;
      // a fresh host cluster holds only what this write (or its copy) put there
      const sameHost = hostOf(old, this.externalData) === j.host
      const bm = g.extendedL2
        ? { bmLo: ((sameHost ? old.bmLo : 0) | j.mask) >>> 0, bmHi: (old.bmHi & ~j.mask) >>> 0 }
        : undefined
      writeEntry(table, idx, g, plainEntry(j.host, bm))
    }
    await this.afterChange()
  }

  /**
   * Queue the references an entry held, unless it still points to `keepHost`.
   * `punch` (a group from punchGroup()): the space of clusters this frees
   * goes back to the file system (qemu passes down discards of guest
   * requests and of shrinking).
   */
  dropReference (old: L2Entry, keepHost = -1, punch?: number[]): void {
    if (this.externalData) return
    if (isCompressed(old)) {
      for (const c of compressedClusters(old, this.g)) this.release(c, punch)
      return
    }
    const host = hostOf(old)
    if (host !== NO_HOST && host !== keepHost) this.release(host / this.cs, punch)
  }

  /** Queue dropping one reference to host cluster `c` (see dropReference for `punch`). */
  release (c: number, punch?: number[]): void {
    this.alloc.decref(c)
    punch?.push(c)
  }

  /** A new group of clusters to punch out once free (one per request). */
  punchGroup (): number[] {
    const group: number[] = []
    this.punchGroups.push(group)
    return group
  }

  /**
   * The active L2 table for `l1i`, ready to be changed in memory: allocated
   * when missing, copied when shared with a snapshot (no OFLAG_COPIED).
   */
  async tableForWrite (l1i: number): Promise<Buffer> {
    const l1 = this.img.l1
    if (l1i * 8 + 8 > l1.length) throw new BlockError('L1 index out of range', 'EIO')
    const hi = l1.readUInt32BE(l1i * 8)
    const off = entryOffset(hi, l1.readUInt32BE(l1i * 8 + 4))
    if (off !== 0 && (hi & OFLAG_COPIED_HI)) {
      const dirty = this.tables.get(off)
      if (dirty) return dirty
      const copy = Buffer.from(await this.img.getL2(off, l1i))
      this.tables.set(off, copy)
      return copy
    }
    const table = off === 0 ? Buffer.alloc(this.cs) : Buffer.from(await this.img.getL2(off, l1i))
    const fresh = await this.alloc.allocate(1)
    this.invalidateMetadata()
    this.tables.set(fresh, table)
    this.freshTables.add(fresh)
    if (off !== 0) this.alloc.decref(off / this.cs)
    this.setL1(l1i, fresh)
    return table
  }

  setL1 (l1i: number, off: number): void {
    const l1 = this.img.l1
    l1.writeUInt32BE(off === 0 ? 0 : (Math.floor(off / 0x100000000) | OFLAG_COPIED_HI) >>> 0, l1i * 8)
    l1.writeUInt32BE(off >>> 0, l1i * 8 + 4)
    this.l1Dirty.add(l1i)
  }

  /** An active L1 entry was changed in place by the caller (snapshot flag updates): write it with the tables. */
  markL1Dirty (l1i: number): void {
    this.l1Dirty.add(l1i)
  }

  /** After a metadata change: write back when too much is held in memory. */
  private async afterChange (): Promise<void> {
    if (this.tables.size > MAX_DIRTY_TABLES || this.refs.dirtyBlockCount > MAX_DIRTY_TABLES) {
      await this.flushMetadata()
    }
  }

  // ---- zero writes and discards -----------------------------------------

  async writeZeroes (offset: number, length: number, opts: WriteZeroesOptions = {}): Promise<void> {
    this.checkUsable()
    if (length === 0) return
    const g = this.g
    const hasBacking = this.img.backing !== null
    // version 2 has no zero flag: with a backing file, zeros must be written
    if (!this.v3 && hasBacking) return this.writeZeroBuffers(offset, length)
    await this.ensureDirtyBit()
    const unit = g.extendedL2 ? g.subclusterSize : g.clusterSize
    let start = offset
    let end = offset + length
    // a partial unit becomes a whole one when the rest of it reads as zeros anyway
    const headUnit = Math.floor(start / unit) * unit
    if (headUnit !== start) {
      if (await this.readsAsZero(headUnit, start)) {
        start = headUnit
      } else {
        const stop = Math.min(end, headUnit + unit)
        await this.writeZeroBuffers(start, stop - start)
        start = stop
      }
    }
    if (start < end && end % unit !== 0) {
      const tailUnit = Math.floor(end / unit) * unit
      const unitEnd = tailUnit + unit
      if (await this.readsAsZero(end, Math.min(unitEnd, this.img.size))) {
        end = unitEnd
      } else {
        await this.writeZeroBuffers(Math.max(tailUnit, start), end - Math.max(tailUnit, start))
        end = Math.max(tailUnit, start)
      }
    }
    const punch = this.punchGroup()
    let pos = start
    while (pos < end) {
      const stop = Math.min(end, (g.l1Index(pos) + 1) * g.l2Coverage)
      await this.changeEntries(pos, stop, (old, mask, full) => this.zeroEntry(old, mask, full, opts.unmap === true, punch))
      pos = stop
    }
  }

  private async writeZeroBuffers (offset: number, length: number): Promise<void> {
    const chunk = Buffer.alloc(Math.min(length, 1 << 20))
    for (let pos = offset; pos < offset + length; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, offset + length - pos)), pos)
    }
  }

  /** Does [from, to) read as zeros through the whole chain (by metadata, no data scan)? */
  private async readsAsZero (from: number, to: number): Promise<boolean> {
    let pos = from
    const stop = Math.min(to, this.img.size)
    while (pos < stop) {
      const st = await this.img.blockStatus(pos, stop - pos)
      if (st.kind === 'data' && !st.zero) return false
      pos += st.length
    }
    return true
  }

  /**
   * The entry after zeroing the subclusters in `mask` (all, with standard L2;
   * `full` = the whole cluster). null: cannot be done in metadata (the caller
   * writes zero buffers instead).
   */
  private zeroEntry (old: L2Entry, mask: number, full: boolean, unmap: boolean, punch: number[]): L2Entry | null {
    const g = this.g
    const host = hostOf(old, this.externalData)
    const own = host !== NO_HOST && (isCopied(old) || this.externalData)
    if (!this.v3) {
      // no zero flag: deallocate (only reached without a backing file)
      this.dropReference(old, -1, punch)
      return EMPTY_ENTRY
    }
    if (!g.extendedL2) {
      if (isCompressed(old) || (host !== NO_HOST && (unmap || !own) && !this.dataRaw)) {
        this.dropReference(old, -1, punch)
        return plainEntry(NO_HOST, undefined, true)
      }
      return plainEntry(own ? host : NO_HOST, undefined, true)
    }
    if (full && (isCompressed(old) || (host !== NO_HOST && (unmap || !own)))) {
      this.dropReference(old, -1, punch)
      return { hi: 0, lo: 0, bmHi: ALL_SUBCLUSTERS, bmLo: 0 }
    }
    if (isCompressed(old) || (host !== NO_HOST && !own)) return null
    return { ...old, bmLo: (old.bmLo & ~mask) >>> 0, bmHi: (old.bmHi | mask) >>> 0 }
  }

  async discard (offset: number, length: number): Promise<void> {
    this.checkUsable()
    const cs = this.cs
    // only whole clusters are discarded; the last one counts as whole at the image end
    const start = Math.ceil(offset / cs) * cs
    const end = offset + length >= this.img.size ? Math.ceil((offset + length) / cs) * cs : Math.floor((offset + length) / cs) * cs
    if (start >= end) return
    await this.ensureDirtyBit()
    const hasBacking = this.img.backing !== null
    const punch = this.punchGroup()
    let pos = start
    while (pos < end) {
      const stop = Math.min(end, (this.g.l1Index(pos) + 1) * this.g.l2Coverage)
      await this.changeEntries(pos, stop, (old) => {
        if (isUnallocated(old, this.g) && !hasBacking) return old
        this.dropReference(old, -1, punch)
        if (!this.v3) return EMPTY_ENTRY
        return this.g.extendedL2 ? { hi: 0, lo: 0, bmHi: ALL_SUBCLUSTERS, bmLo: 0 } : plainEntry(NO_HOST, undefined, true)
      }, true)
      pos = stop
    }
    if (this.dataRaw) await this.dataStore.punchHole(start, Math.min(end, this.img.size) - start)
  }

  /**
   * Apply `change` to the entries of [start, end) (inside one L2 table;
   * unit-aligned). A null result means: write zero buffers for that cluster.
   */
  private async changeEntries (start: number, end: number,
    change: (old: L2Entry, mask: number, full: boolean) => L2Entry | null, discarding = false): Promise<void> {
    const g = this.g
    const cs = g.clusterSize
    const fallback: Array<[number, number]> = []
    const gc0 = Math.floor(start / cs)
    const gc1 = Math.floor((end - 1) / cs)
    for (;;) {
      const wait = await this.mutex.run(async () => {
        const busy = this.busy(gc0, gc1)
        if (busy) return busy
        const l1i = g.l1Index(start)
        const table = await this.currentTable(l1i)
        // qemu fetches the table for a discard even where nothing changes (allocating an empty one)
        let writable: Buffer | null = discarding ? await this.tableForWrite(l1i) : null
        for (let gc = gc0; gc <= gc1; gc++) {
          const a = Math.max(start, gc * cs) - gc * cs
          const b = Math.min(end, (gc + 1) * cs) - gc * cs
          const full = a === 0 && b === cs
          const mask = g.extendedL2 ? subclusterMask(Math.floor(a / g.subclusterSize), Math.floor((b - 1) / g.subclusterSize)) : ALL_SUBCLUSTERS
          const idx = g.l2Index(gc * cs)
          const current = writable ?? table
          const old = current ? readEntry(current, idx, g) : EMPTY_ENTRY
          const next = change(old, mask, full)
          if (next === null) { fallback.push([gc * cs + a, b - a]); continue }
          if (sameEntry(old, next)) continue
          writable ??= await this.tableForWrite(l1i)
          writeEntry(writable, idx, g, next)
        }
        await this.afterChange()
        return null
      })
      if (!wait) break
      await wait
    }
    if (discarding && this.dataRaw) return
    for (const [off, len] of fallback) await this.writeZeroBuffers(off, len)
    if (this.dataRaw && !discarding) {
      // data_file_raw: the data file must read as zeros too
      await this.dataStore.punchHole(start, Math.min(end, this.img.size) - start)
    }
  }

  // ---- compressed writes -------------------------------------------------

  /** The compressed form of one cluster (a short last cluster is padded), or null to store it plainly. */
  async compressForWrite (buf: Buffer): Promise<Buffer | null> {
    const cs = this.cs
    let input = buf
    if (buf.length < cs) { input = Buffer.alloc(cs); buf.copy(input) }
    return (await loadCompressWrite()).compressCluster(this.img.header.compressionType, input)
  }

  /** `precompressed`: what compressForWrite returned for `buf`, when the caller compressed ahead. */
  async writeCompressed (buf: Buffer, offset: number, precompressed?: Buffer | null, hooks?: WriteHooks): Promise<void> {
    this.checkCompressedWrite(offset, buf.length, 1)
    const packed = precompressed !== undefined ? precompressed : await this.compressForWrite(buf)
    if (!packed) return this.write(buf, offset, hooks) // incompressible: stored plainly, as qemu does
    await this.writePackedClusters(offset, [packed], hooks)
  }

  /**
   * Store consecutive clusters from `offset` (a cluster boundary), each
   * already compressed (compressForWrite gave a Buffer for every one). They
   * are placed one after the other as single writes would place them, but
   * allocated in one step and written with one write where they sit back to
   * back, which is what makes a compressed convert's writes cheap.
   */
  async writePackedClusters (offset: number, packed: Buffer[], hooks?: WriteHooks): Promise<void> {
    const cs = this.cs
    this.checkCompressedWrite(offset, Math.min(packed.length * cs, this.img.size - offset), packed.length)
    await this.ensureDirtyBit()
    const g = this.g
    const gc0 = offset / cs
    const hosts: number[] = []
    let release: () => void = () => undefined
    for (;;) {
      const wait = await this.mutex.run(async () => {
        const busy = this.busy(gc0, gc0 + packed.length - 1)
        if (busy) return busy
        for (const p of packed) {
          // the L2 table first, as qemu places it
          await this.tableForWrite(g.l1Index((gc0 + hosts.length) * cs))
          hosts.push(await this.alloc.allocateBytes(p.length))
        }
        release = this.claim(packed.map((_, i) => gc0 + i))
        return null
      })
      if (!wait) break
      await wait
    }
    hooks?.onAllocated?.()
    try {
      for (let i = 0; i < packed.length;) {
        let j = i + 1
        while (j < packed.length && hosts[j] === hosts[j - 1] + packed[j - 1].length) j++
        await this.img.store.write(j === i + 1 ? packed[i] : Buffer.concat(packed.slice(i, j)), hosts[i])
        i = j
      }
      // a compressed cluster that used to start at one of these places (since freed) may still be cached
      for (const host of hosts) this.img.shared.clusterCache.delete(this.img.shared.owner, host)
      await this.mutex.run(async () => {
        for (const [i, p] of packed.entries()) {
          const at = (gc0 + i) * cs
          const table = await this.tableForWrite(g.l1Index(at))
          const idx = g.l2Index(at)
          this.dropReference(readEntry(table, idx, g))
          writeEntry(table, idx, g, compressedEntry(encodeCompressed(hosts[i], p.length, g)))
        }
        await this.afterChange()
      })
    } finally {
      release()
    }
  }

  /** What a compressed write of `count` clusters, [offset, offset+length), needs: whole clusters (a short last one at the image end), no encryption or data file. */
  private checkCompressedWrite (offset: number, length: number, count: number): void {
    this.checkUsable()
    const cs = this.cs
    if (this.img.shared.crypto) throw new BlockError('Compression is not supported for encrypted images', 'ENOTSUP')
    if (this.externalData) throw new BlockError('Compression is not supported with an external data file', 'ENOTSUP')
    if (offset % cs !== 0 || length <= (count - 1) * cs || length > count * cs || (length !== count * cs && offset + length !== this.img.size)) {
      throw new BlockError('Compressed writes must cover exactly one cluster', 'EINVAL')
    }
  }

  // ---- flushing ------------------------------------------------------------

  get hasDirtyMetadata (): boolean {
    return this.tables.size > 0 || this.l1Dirty.size > 0 || this.refs.dirty || this.alloc.hasDeferred
  }

  /** Write all metadata in crash-safe order. Call under the mutex. */
  async flushMetadata (): Promise<void> {
    const store = this.img.store
    if (this.tables.size > 0 || this.l1Dirty.size > 0 || this.refs.dirty) {
      // tables no on-disk L1 entry reaches can go first; then the refcounts
      for (const off of this.freshTables) await store.write(this.tables.get(off)!, off)
      await this.refs.writeDirty()
      if (this.dataStore !== store) await this.dataStore.flush()
      await store.flush()
      for (const [off, t] of this.tables) if (!this.freshTables.has(off)) await store.write(t, off)
      await this.writeL1Entries()
      await store.flush()
      // the written tables become the cached clean copies
      for (const [off, t] of this.tables) this.img.shared.metadataCache.set(this.img.shared.owner, off, t)
      this.tables.clear()
      this.freshTables.clear()
    }
    if (this.alloc.hasDeferred) {
      // nothing on disk points to the freed clusters now; wait for I/O that may still use them
      await Promise.all([...this.dataIO])
      const underflow = await this.alloc.applyDeferred()
      await this.refs.writeDirty()
      if (underflow.length > 0) {
        this.img.shared.warn(`qcow2: Marking image as corrupt: Refcount of cluster 0x${underflow[0].toString(16)} dropped below zero; further corruption events will be suppressed\n`)
      }
    }
    await this.punchFreed()
  }

  /** Punch out the space of the requests' freed clusters (after the frees were applied). */
  private async punchFreed (): Promise<void> {
    // a request still running may add to its group later: a group is only
    // forgotten once it stayed empty from one flush to the next
    const idle = this.idlePunchGroups
    this.punchGroups = this.punchGroups.filter(group => group.length > 0 || !idle.has(group))
    for (const group of this.punchGroups) {
      if (group.length === 0) { idle.add(group); continue }
      await punchFreeClusters(this.img.store, this.refs, group)
      group.length = 0
      idle.delete(group)
    }
  }

  private async writeL1Entries (): Promise<void> {
    if (this.l1Dirty.size === 0) return
    const idx = [...this.l1Dirty].sort((a, b) => a - b)
    this.l1Dirty.clear()
    const l1 = this.img.l1
    const base = this.img.header.l1TableOffset
    for (let i = 0; i < idx.length;) {
      let j = i + 1
      while (j < idx.length && idx[j] === idx[j - 1] + 1) j++
      await this.img.store.write(l1.subarray(idx[i] * 8, idx[j - 1] * 8 + 8), base + idx[i] * 8)
      i = j
    }
  }

  /** Make everything durable; clear the lazy-refcounts dirty bit. */
  async flush (): Promise<void> {
    await this.mutex.run(async () => {
      await this.flushMetadata()
      await this.img.store.flush()
      if (this.dataStore !== this.img.store) await this.dataStore.flush()
      if (this.dirtyBitSet) {
        const h = this.img.header
        await writeHeaderIncompatible(this.img.store, h, h.incompatible & ~INCOMPAT_DIRTY)
        this.dirtyBitSet = false
      }
    })
  }

  /** A table no L1 entry points to any more (resize): it is not written. */
  forgetTable (off: number): void {
    this.tables.delete(off)
    this.freshTables.delete(off)
    this.img.shared.metadataCache.delete(this.img.shared.owner, off)
  }
}

function sameEntry (a: L2Entry, b: L2Entry): boolean {
  return a.hi === b.hi && a.lo === b.lo && a.bmHi === b.bmHi && a.bmLo === b.bmLo
}
