// Where a new qcow2 image's clusters go, decided the way qemu-img decides
// them, so that our images are laid out like qemu's byte for byte.
//
// Observed behaviour this follows: qemu first writes a minimal image (header
// in cluster 0, a one-cluster refcount table in cluster 1 pointing to a
// refcount block in cluster 2) and then grows it to the requested size like
// a resize: the L1 table is allocated, and for preallocation the L2 tables
// and data clusters. Allocation takes the first run of free clusters at or
// after a moving "free cluster index"; a missing refcount block is allocated
// the same way (describing itself when it lands in its own range); a full
// refcount table is replaced by a bigger one placed, with the refcount blocks
// describing it, at the next refcount-block-aligned cluster beyond.
import { Geometry } from './layout.js'
import { setRefcount } from './refcount.js'
import { refblockEntries, refcountMetadataClusters, reftableEntriesPerCluster } from './refcount-math.js'
import type { Preallocation } from '../../block/types.js'

export interface LayoutParams {
  clusterBits: number
  refcountOrder: number
  extendedL2: boolean
  /** guest size in bytes (a multiple of 512) */
  size: number
  preallocation: Preallocation
  /** data clusters live in an external file: only metadata is allocated here */
  externalData: boolean
  /** clusters to allocate for an encryption header, after everything else (0 = none) */
  cryptoClusters?: number
}

/** One L2 table and the run of data clusters it maps. */
export interface L2Run {
  l2Cluster: number
  /** first guest cluster the table's run maps, and how many */
  firstGuestCluster: number
  count: number
  /** host cluster of the first mapped guest cluster (in the data file for external data) */
  hostCluster: number
}

/** What to write, as a list of byte ranges (a range written is data, even zeros). */
export interface Qcow2Layout {
  clusterSize: number
  l1Size: number
  /** cluster index of the L1 table (0 when l1Size is 0) */
  l1Cluster: number
  reftableCluster: number
  reftableClusters: number
  /** refcount table entries: cluster index of each refcount block, 0 = none */
  reftable: number[]
  /** refcount blocks to write: reftable index -> refcounts */
  refblocks: Map<number, Uint32Array>
  /**
   * refcount tables given up for bigger ones, with the entries they had then:
   * qemu leaves their bytes behind, so they are written first (anything
   * written later in those clusters replaces them)
   */
  staleTables: Array<{ cluster: number, clusters: number, entries: number[] }>
  l2: L2Run[]
  cryptoCluster: number
  /** byte ranges of zeros qemu writes (tail of a partial last cluster, preallocation=full) */
  zeroWrites: Array<{ offset: number, length: number }>
  /** byte range qemu fallocates (preallocation=falloc) */
  fallocRange?: { offset: number, length: number }
  /** the file's length when done */
  fileLength: number
  /** where data goes in an external data file, and the length it must have */
  dataFileLength?: number
}

class LayoutBuilder {
  readonly cs: number
  readonly perBlock: number
  readonly perTableCluster: number
  reftable: number[]
  reftableCluster = 1
  reftableClusters = 1
  readonly blocks = new Map<number, Uint32Array>()
  readonly staleTables: Qcow2Layout['staleTables'] = []
  freeIndex = 0
  /** end of the bytes written so far (the file length) */
  fileEnd: number

  constructor (readonly p: LayoutParams) {
    this.cs = 2 ** p.clusterBits
    this.perBlock = refblockEntries(this.cs, p.refcountOrder)
    this.perTableCluster = reftableEntriesPerCluster(this.cs)
    // the minimal image: header, refcount table, one refcount block
    this.reftable = [2]
    const first = new Uint32Array(this.perBlock)
    first[0] = first[1] = first[2] = 1
    this.blocks.set(0, first)
    this.fileEnd = 3 * this.cs
  }

  refcount (cluster: number): number {
    const b = this.blocks.get(Math.floor(cluster / this.perBlock))
    return b ? b[cluster % this.perBlock] : 0
  }

  /** The first run of n free clusters at or after the free index (no refcounts taken). */
  findFree (n: number): number {
    let start = this.freeIndex
    let i = start
    while (i < start + n) {
      if (this.refcount(i) !== 0) start = i + 1
      i++
    }
    this.freeIndex = start + n
    return start
  }

  /**
   * Allocate n contiguous clusters. Taking their refcounts can need a new
   * refcount block, which may land where the run was: then the refcounts
   * taken so far are given back and the search starts again (qemu's EAGAIN).
   */
  alloc (n: number): number {
    for (;;) {
      const start = this.findFree(n)
      if (this.updateRefcount(start, n, 1)) return start
    }
  }

  /** Take refcounts for clusters chosen by the caller (data after a preallocated area). */
  allocAt (start: number, n: number): void {
    while (!this.updateRefcount(start, n, 1)) { /* a refcount block was added: again */ }
  }

  /** Change refcounts; false when a refcount block had to be allocated first (nothing changed then). */
  updateRefcount (start: number, n: number, delta: number): boolean {
    for (let c = start; c < start + n;) {
      if (!this.ensureBlock(c)) {
        this.applyRefcount(start, c - start, -delta)
        return false
      }
      const idx = Math.floor(c / this.perBlock)
      const stop = Math.min(start + n, (idx + 1) * this.perBlock)
      this.applyRefcount(c, stop - c, delta)
      c = stop
    }
    return true
  }

  /** Add delta to refcounts whose blocks exist; a cluster whose refcount drops to 0 lowers the free index. */
  private applyRefcount (start: number, n: number, delta: number): void {
    for (let c = start; c < start + n; c++) {
      const block = this.blocks.get(Math.floor(c / this.perBlock))!
      const v = (block[c % this.perBlock] += delta)
      if (v === 0 && c < this.freeIndex) this.freeIndex = c
    }
  }

  /**
   * Make sure the refcount block covering `cluster` exists, allocating it as
   * qemu does: at the first free cluster, describing itself when it lands in
   * its own range, else counted in another block. False when the refcount
   * table had to be replaced by a bigger one: the caller must start over, as
   * the new structures may sit where it meant to allocate (observed: qemu
   * retries only then).
   */
  ensureBlock (cluster: number): boolean {
    const idx = Math.floor(cluster / this.perBlock)
    if (this.reftable[idx]) return true
    const newBlock = this.findFree(1)
    const block = new Uint32Array(this.perBlock)
    if (Math.floor(newBlock / this.perBlock) === idx) block[newBlock % this.perBlock] = 1
    else if (!this.updateRefcount(newBlock, 1, 1)) return false
    this.blocks.set(idx, block)
    if (idx < this.reftableClusters * this.perTableCluster) {
      this.reftable[idx] = newBlock
      return true
    }
    // the refcount table is full: a bigger one goes past the range of the block that was needed
    const metaStart = (idx + 1) * this.perBlock
    this.refcountArea(metaStart, 0, false, idx, newBlock)
    return false
  }

  /**
   * Write a new refcount table (and the refcount blocks missing up to what
   * `start + additional` clusters need) at `start`; returns the first cluster
   * after it. `exact` sizes the table to fit, otherwise it gets 50% room.
   */
  refcountArea (start: number, additional: number, exact: boolean, newIdx: number | undefined, newBlock: number): number {
    const total = refcountMetadataClusters(start + additional, this.cs, this.p.refcountOrder).blocks
    let entries = exact ? total : total + Math.ceil(total / 2)
    entries = Math.max(entries, this.reftableClusters * this.perTableCluster)
    entries = Math.ceil(entries / this.perTableCluster) * this.perTableCluster
    const tableClusters = entries / this.perTableCluster
    const table = this.reftable.slice()
    if (newIdx !== undefined) table[newIdx] = newBlock
    const areaIdx = Math.floor(start / this.perBlock)
    let missing = 0
    for (let i = areaIdx; i < total; i++) if (!table[i]) missing++
    const tableStart = start + missing
    const end = tableStart + tableClusters
    let pos = start
    for (let i = areaIdx; i < total; i++) {
      if (!table[i]) {
        table[i] = pos++
        if (!this.blocks.has(i)) this.blocks.set(i, new Uint32Array(this.perBlock))
      }
      const block = this.blocks.get(i)!
      const first = i * this.perBlock
      for (let c = Math.max(first, start); c < Math.min(end, first + this.perBlock); c++) block[c - first] = 1
    }
    this.fileEnd = Math.max(this.fileEnd, end * this.cs)
    const oldStart = this.reftableCluster
    const oldClusters = this.reftableClusters
    this.staleTables.push({ cluster: oldStart, clusters: oldClusters, entries: this.reftable.slice() })
    this.reftable = table
    this.reftableCluster = tableStart
    this.reftableClusters = tableClusters
    this.applyRefcount(oldStart, oldClusters, -1)
    return end
  }

  noteWrite (offset: number, length: number): void {
    this.fileEnd = Math.max(this.fileEnd, offset + length)
  }
}

/** Decide the layout of a new image (see the file comment). */
export function planQcow2Layout (p: LayoutParams): Qcow2Layout {
  const b = new LayoutBuilder(p)
  const cs = b.cs
  const geo = new Geometry(p.clusterBits, p.extendedL2)
  const layout: Qcow2Layout = {
    clusterSize: cs, l1Size: 0, l1Cluster: 0, reftableCluster: 1, reftableClusters: 1, reftable: [],
    refblocks: b.blocks, staleTables: b.staleTables, l2: [], cryptoCluster: 0, zeroWrites: [], fileLength: 0,
  }
  const l1Size = Math.ceil(p.size / geo.l2Coverage)
  if (l1Size > 0) {
    layout.l1Size = l1Size
    layout.l1Cluster = b.alloc(Math.ceil(l1Size * 8 / cs))
    b.noteWrite(layout.l1Cluster * cs, l1Size * 8)
  }
  const dataClusters = Math.ceil(p.size / cs)
  if (p.preallocation === 'metadata') preallocateMetadata(b, p, geo, layout, dataClusters)
  else if (p.preallocation === 'falloc' || p.preallocation === 'full') preallocateData(b, p, geo, layout, dataClusters)
  // the encryption header comes once the image has its size (and preallocation)
  if (p.cryptoClusters) {
    layout.cryptoCluster = b.alloc(p.cryptoClusters)
    b.noteWrite(layout.cryptoCluster * cs, p.cryptoClusters * cs)
  }
  layout.reftable = b.reftable
  layout.reftableCluster = b.reftableCluster
  layout.reftableClusters = b.reftableClusters
  layout.fileLength = b.fileEnd
  return layout
}

/** The guest-cluster runs of each L2 table, in order. */
function* l2Chunks (geo: Geometry, dataClusters: number): Generator<{ first: number, count: number }> {
  for (let first = 0; first < dataClusters; first += geo.l2Entries) {
    yield { first, count: Math.min(geo.l2Entries, dataClusters - first) }
  }
}

/** preallocation=metadata: per L2 table, the table and then its data clusters; the file is extended, not written. */
function preallocateMetadata (b: LayoutBuilder, p: LayoutParams, geo: Geometry, layout: Qcow2Layout, dataClusters: number): void {
  const cs = b.cs
  for (const chunk of l2Chunks(geo, dataClusters)) {
    const l2Cluster = b.alloc(1)
    b.noteWrite(l2Cluster * cs, cs)
    // with an external data file, guest cluster N lives at cluster N of that file
    const host = p.externalData ? chunk.first : b.alloc(chunk.count)
    layout.l2.push({ l2Cluster, firstGuestCluster: chunk.first, count: chunk.count, hostCluster: host })
  }
  if (p.externalData) {
    layout.dataFileLength = dataClusters * cs
    return
  }
  // the file reaches the guest's last byte; the rest of the last (sub)cluster is written with zeros
  const last = layout.l2[layout.l2.length - 1]
  if (!last) return
  const lastHost = (last.hostCluster + last.count - 1) * cs
  const tail = p.size - (dataClusters - 1) * cs
  b.fileEnd = Math.max(b.fileEnd, lastHost + tail)
  const sub = geo.subclusterSize
  const tailEnd = Math.ceil(tail / sub) * sub
  if (tailEnd > tail) {
    layout.zeroWrites.push({ offset: lastHost + tail, length: tailEnd - tail })
    b.fileEnd = Math.max(b.fileEnd, lastHost + tailEnd)
  }
}

/**
 * preallocation=falloc/full: a refcount table sized for everything is put
 * after the current end of file, the data clusters right after it, then the
 * L2 tables are allocated (first in the space the old refcount table freed).
 */
function preallocateData (b: LayoutBuilder, p: LayoutParams, geo: Geometry, layout: Qcow2Layout, dataClusters: number): void {
  const cs = b.cs
  if (dataClusters === 0) return
  const l2Tables = Math.ceil(dataClusters / geo.l2Entries)
  let dataStart: number
  if (p.externalData) {
    dataStart = 0
  } else {
    const start = Math.ceil(b.fileEnd / cs)
    dataStart = b.refcountArea(start, dataClusters + l2Tables, true, undefined, 0)
    b.allocAt(dataStart, dataClusters)
  }
  const range = { offset: dataStart * cs, length: dataClusters * cs }
  if (p.externalData) layout.dataFileLength = range.length
  else b.noteWrite(range.offset, range.length)
  if (p.preallocation === 'falloc') layout.fallocRange = range
  else layout.zeroWrites.push(range)
  for (const chunk of l2Chunks(geo, dataClusters)) {
    const l2Cluster = b.alloc(1)
    b.noteWrite(l2Cluster * cs, cs)
    layout.l2.push({ l2Cluster, firstGuestCluster: chunk.first, count: chunk.count, hostCluster: dataStart + chunk.first })
  }
}

/** Encode refcount block `block` for writing. */
export function encodeRefblock (block: Uint32Array, clusterSize: number, order: number): Buffer {
  const buf = Buffer.alloc(clusterSize)
  for (let i = 0; i < block.length; i++) if (block[i]) setRefcount(buf, i, order, block[i])
  return buf
}
