// The persistent dirty bitmaps of an open qcow2 image (docs/interop/
// bitmaps.rst, qcow2.txt "Bitmaps extension"), as qemu handles them:
//
// - A read-write open loads every consistent bitmap into memory and marks
//   it in use on disk (the directory is rewritten in place), so a crash
//   leaves bitmaps that qemu and qimg treat as inconsistent, never stale
//   ones that look valid. Bitmaps already in use at open are inconsistent:
//   they are kept as they are and can only be removed.
// - Guest writes, zero writes and discards set the bits of enabled ('auto')
//   bitmaps.
// - Closing stores every bitmap anew: data clusters (all-zero parts need
//   none), tables and the directory go to fresh clusters, the refcounts are
//   written, then the header switches to the new directory and clears the
//   in-use flags in one write; only then are the old clusters freed. A crash
//   at any point leaves at worst leaked clusters and in-use bitmaps.
import { BlockError } from '../../cli/errors.js'
import type { DirtyBitmap } from '../../block/dirty-bitmap.js'
import type { BitmapInfo, PersistentBitmaps } from '../../block/types.js'
import {
  FLAG_AUTO, FLAG_IN_USE, MAX_BITMAPS, MAX_DIRECTORY_SIZE, MAX_NAME_SIZE, MAX_PHYS_SIZE, MAX_TABLE_SIZE,
  TYPE_DIRTY_TRACKING, bitmapTableSize, decodeBitmapTableEntry, encodeBitmapDirectory, flagNames, type BitmapDirEntry,
} from './bitmaps.js'
import { AUTOCLEAR_BITMAPS, writeU64 } from './header.js'
import { readTable } from './table-io.js'
import type { LoadedBitmap } from './bitmap-load.js'
import type { Qcow2Image } from './driver.js'

interface Bitmap {
  name: string
  granularityBits: number
  enabled: boolean
  /** in use when the image was opened: kept verbatim, never used */
  inconsistent: boolean
  /** contents, once loaded (consistent bitmaps of a read-write image) */
  data?: DirtyBitmap
  /** the directory entry it has on disk now (undefined: not stored yet) */
  stored?: BitmapDirEntry
  /** host clusters holding its data now (to free when it is rewritten) */
  dataClusters: number[]
}

/**
 * Reading and writing bitmap contents is loaded when first needed: a
 * read-only open (info, map, convert) makes a Qcow2Bitmaps only to list them.
 */
const bitmapIo = (): Promise<typeof import('./bitmap-io.js')> => import('./bitmap-io.js')

/** The directory entry's size in bytes (header, name, padding to 8). */
function entryBytes (name: string): number {
  return (24 + Buffer.byteLength(name, 'utf8') + 7) & ~7
}

export class Qcow2Bitmaps implements PersistentBitmaps {
  private readonly bitmaps: Bitmap[]
  /** clusters to free once the new directory is in the header */
  private readonly garbage: Bitmap[] = []
  /** something must be written on close (in-use flags to clear, changes) */
  private changed = false

  constructor (private readonly img: Qcow2Image, loaded: LoadedBitmap[]) {
    this.bitmaps = loaded.map(e => ({
      name: e.name,
      granularityBits: e.granularityBits,
      enabled: (e.flags & FLAG_AUTO) !== 0,
      inconsistent: (e.flags & FLAG_IN_USE) !== 0,
      stored: e,
      dataClusters: [],
    }))
  }

  private get cs (): number { return this.img.geo.clusterSize }

  /**
   * Read-write open: load the consistent bitmaps and mark them in use on
   * disk before anything else can change the image.
   */
  async openForWriting (): Promise<void> {
    const usable = this.bitmaps.filter(b => !b.inconsistent)
    if (usable.length === 0) return
    for (const b of usable) {
      const { bitmap, dataClusters } = await (await bitmapIo()).readBitmapContents(this.img.store, b.stored!, this.img.size, this.cs)
      b.data = bitmap
      b.dataClusters = dataClusters
    }
    // set the in-use flag of every entry in the directory's own bytes (names are kept byte for byte)
    const ext = this.img.header.bitmapsExt!
    const dir = Buffer.alloc(ext.directorySize)
    await readTable(this.img.store, dir, BigInt(ext.directoryOffset))
    for (let pos = 0; pos + 24 <= dir.length; pos += (24 + dir.readUInt32BE(pos + 20) + dir.readUInt16BE(pos + 18) + 7) & ~7) {
      dir.writeUInt32BE((dir.readUInt32BE(pos + 12) | FLAG_IN_USE) >>> 0, pos + 12)
    }
    await this.img.store.write(dir, ext.directoryOffset)
    await this.img.store.flush()
    this.changed = true
  }

  private find (name: string): Bitmap {
    const b = this.bitmaps.find(x => x.name === name)
    if (!b) throw new BlockError(`Dirty bitmap '${name}' not found`, 'ENOENT')
    return b
  }

  private writable (): void {
    if (this.img.readOnly) throw new BlockError('Image is read-only', 'EACCES')
  }

  list (): BitmapInfo[] {
    return this.bitmaps.map(b => ({ name: b.name, granularity: 2 ** b.granularityBits, enabled: b.enabled, inconsistent: b.inconsistent }))
  }

  async read (name: string): Promise<DirtyBitmap> {
    const b = this.find(name)
    if (b.inconsistent) throw new BlockError(`Bitmap '${name}' is inconsistent`, 'EINVAL')
    if (b.data) return b.data.copy()
    return (await (await bitmapIo()).readBitmapContents(this.img.store, b.stored!, this.img.size, this.cs)).bitmap
  }

  /** qemu's choice: the cluster size, but at least 4 KiB and at most 64 KiB */
  defaultGranularity (): number {
    return Math.min(Math.max(this.cs, 4096), 65536)
  }

  storable (): boolean { return this.img.header.version >= 3 }

  checkStorable (name: string, granularity: number): void {
    if (!this.storable()) throw new BlockError('Cannot store dirty bitmaps in qcow2 v2 files', 'ENOTSUP')
    if (Buffer.byteLength(name, 'utf8') > MAX_NAME_SIZE) throw new BlockError(`Name length exceeds maximum (${MAX_NAME_SIZE} characters)`, 'EINVAL')
    if (this.bitmaps.length >= MAX_BITMAPS) throw new BlockError('Maximum number of persistent bitmaps is already reached', 'EINVAL')
    const dirSize = this.bitmaps.reduce((n, b) => n + entryBytes(b.name), 0)
    if (dirSize + entryBytes(name) > MAX_DIRECTORY_SIZE) throw new BlockError('Not enough space in the bitmap directory', 'EINVAL')
    const tableSize = bitmapTableSize(this.img.size, Math.log2(granularity), this.cs)
    if (tableSize > MAX_TABLE_SIZE || tableSize * this.cs > MAX_PHYS_SIZE) {
      throw new BlockError('Too much space will be occupied by the bitmap. Use larger granularity', 'EINVAL')
    }
  }

  async add (name: string, opts: { granularity: number, enabled: boolean }): Promise<void> {
    this.writable()
    const { DirtyBitmap } = await import('../../block/dirty-bitmap.js')
    const data = new DirtyBitmap(this.img.size, opts.granularity, this.cs)
    this.bitmaps.push({ name, granularityBits: Math.log2(opts.granularity), enabled: opts.enabled, inconsistent: false, data, dataClusters: [] })
    this.changed = true
  }

  async remove (name: string): Promise<void> {
    this.writable()
    const b = this.find(name)
    this.bitmaps.splice(this.bitmaps.indexOf(b), 1)
    this.garbage.push(b)
    this.changed = true
  }

  async clear (name: string): Promise<void> {
    this.writable()
    this.usable(name).clear()
    this.changed = true
  }

  async setEnabled (name: string, enabled: boolean): Promise<void> {
    this.writable()
    this.usable(name)
    this.find(name).enabled = enabled
    this.changed = true
  }

  async merge (name: string, source: DirtyBitmap): Promise<void> {
    this.writable()
    this.usable(name).merge(source)
    this.changed = true
  }

  private usable (name: string): DirtyBitmap {
    const b = this.find(name)
    if (b.inconsistent || !b.data) throw new BlockError(`Bitmap '${name}' is inconsistent`, 'EINVAL')
    return b.data
  }

  /** Guest bytes [offset, offset + length) changed: set the bits of enabled bitmaps. */
  markDirty (offset: number, length: number): void {
    for (const b of this.bitmaps) if (b.enabled && b.data) b.data.setRange(offset, length)
  }

  /** The name of the first bitmap that cannot be used (resize refuses those), if any. */
  firstInconsistent (): string | undefined {
    return this.bitmaps.find(b => b.inconsistent)?.name
  }

  /** The disk size changed: bits past a new end go, new bits are clean. */
  resize (size: number): void {
    for (const b of this.bitmaps) b.data?.resize(size)
    if (this.bitmaps.length > 0) this.changed = true
  }

  /** Store everything (on close). */
  async store (): Promise<void> {
    if (!this.changed) return
    const w = this.img.shared.writer
    if (!w) throw new BlockError('Image is read-only', 'EACCES')
    await w.mutex.run(async () => {
      await w.flushMetadata()
      // observed: bitmaps created in this session follow the stored ones, newest first
      const order = [...this.bitmaps.filter(b => b.stored), ...this.bitmaps.filter(b => !b.stored).reverse()]
      this.bitmaps.splice(0, this.bitmaps.length, ...order)
      const entries: BitmapDirEntry[] = []
      for (const b of this.bitmaps) entries.push(b.inconsistent ? b.stored! : await this.writeBitmap(b))
      const h = this.img.header
      const oldDir = h.bitmapsExt
      let newExt: typeof h.bitmapsExt
      if (entries.length > 0) {
        const dir = encodeBitmapDirectory(entries)
        const clusters = Math.ceil(dir.length / this.cs)
        const at = await w.alloc.allocate(clusters)
        const padded = Buffer.alloc(clusters * this.cs)
        dir.copy(padded)
        await this.img.store.write(padded, at)
        newExt = { nbBitmaps: entries.length, directorySize: dir.length, directoryOffset: at }
      }
      w.invalidateMetadata()
      // everything new is on disk with its refcounts before the header points to it
      await w.refs.writeDirty()
      await this.img.store.flush()
      h.bitmapsExt = newExt
      h.autoclear = newExt ? h.autoclear | AUTOCLEAR_BITMAPS : h.autoclear & ~AUTOCLEAR_BITMAPS
      const { rewriteHeader } = await import('./header-write.js')
      await rewriteHeader(this.img.store, h, this.cs)
      // the old directory, tables and data are unreferenced now
      if (oldDir) this.free(oldDir.directoryOffset, Math.ceil(oldDir.directorySize / this.cs))
      // (removed bitmaps, and the previous copies of rewritten ones)
      for (const b of this.garbage) await this.freeOld(b)
      this.garbage.length = 0
      await w.flushMetadata()
      this.img.shared.bitmaps = entries.map(e => ({ ...e, granularity: 2 ** e.granularityBits, flagNames: flagNames(e.flags) }))
      for (const [i, b] of this.bitmaps.entries()) b.stored = entries[i]
      this.changed = false
    })
  }

  /** Write one bitmap's data clusters and table to fresh clusters; returns its new directory entry. */
  private async writeBitmap (b: Bitmap): Promise<BitmapDirEntry> {
    const w = this.img.shared.writer!
    const cs = this.cs
    const { RUN_BYTES } = await bitmapIo()
    const data = b.data!
    const n = bitmapTableSize(this.img.size, b.granularityBits, cs)
    const chunks: Array<[number, Buffer]> = []
    for (let i = 0; i < n; i++) {
      const c = data.chunk(i)
      if (c) chunks.push([i, c])
    }
    const table = Buffer.alloc(Math.ceil(n * 8 / cs) * cs)
    const written: number[] = []
    if (chunks.length > 0) {
      // one contiguous run for all non-zero clusters, written in large pieces
      let at = await w.alloc.allocate(chunks.length)
      const per = Math.max(1, RUN_BYTES / cs)
      for (let k = 0; k < chunks.length; k += per) {
        const part = chunks.slice(k, k + per)
        await this.img.store.write(Buffer.concat(part.map(([, c]) => c)), at)
        for (const [i] of part) {
          writeU64(table, i * 8, at)
          written.push(at)
          at += cs
        }
      }
    }
    const tableAt = await w.alloc.allocate(table.length / cs)
    await this.img.store.write(table, tableAt)
    // the previous copy is freed after the header switch
    this.garbage.push({ ...b, dataClusters: b.dataClusters })
    b.dataClusters = written
    return {
      tableOffset: tableAt,
      tableSize: n,
      flags: b.enabled ? FLAG_AUTO : 0,
      type: TYPE_DIRTY_TRACKING,
      granularityBits: b.granularityBits,
      name: b.name,
      extraData: Buffer.alloc(0),
    }
  }

  /** Free what a bitmap's previous copy on disk used. */
  private async freeOld (b: Bitmap): Promise<void> {
    const e = b.stored
    if (!e) return
    let clusters = b.dataClusters
    if (b.inconsistent) clusters = await this.dataClustersOf(e)
    for (const off of clusters) await this.freeIfOwned(off / this.cs)
    for (let i = 0; i < Math.ceil(e.tableSize * 8 / this.cs); i++) await this.freeIfOwned(e.tableOffset / this.cs + i)
  }

  /** Data clusters named by an inconsistent bitmap's table (invalid entries are skipped). */
  private async dataClustersOf (e: BitmapDirEntry): Promise<number[]> {
    const raw = Buffer.alloc(e.tableSize * 8)
    try { await readTable(this.img.store, raw, BigInt(e.tableOffset)) } catch { return [] }
    const out: number[] = []
    for (let i = 0; i < e.tableSize; i++) {
      const t = decodeBitmapTableEntry(raw.readUInt32BE(i * 8), raw.readUInt32BE(i * 8 + 4), this.cs)
      if (t && t.offset !== 0) out.push(t.offset)
    }
    return out
  }

  /** A bitmap cluster has exactly one reference; anything else is not ours to drop. */
  private async freeIfOwned (cluster: number): Promise<void> {
    const w = this.img.shared.writer!
    if (!Number.isSafeInteger(cluster) || cluster <= 0 || cluster >= w.refs.capacityClusters) return
    if (await w.refs.get(cluster) === 1) w.alloc.decref(cluster)
  }

  private free (offset: number, clusters: number): void {
    const w = this.img.shared.writer!
    for (let i = 0; i < clusters; i++) w.alloc.decref(offset / this.cs + i)
  }
}
