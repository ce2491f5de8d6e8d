// qcow2: opening (with qemu's validation and messages), the read path and
// block status. Guest offset -> L1 entry -> L2 table -> (sub)cluster.
import { BlockError } from '../../cli/errors.js'
import type { JsonValue } from '../../cli/qjson.js'
import type { ByteStore } from '../../io/byte-store.js'
import { ImageBase } from '../../block/image.js'
import { native } from '../../io/native.js'
import { settleInOrder } from '../../block/settle.js'
import { newCacheOwner, type ClusterCache } from '../../block/cache.js'
import type {
  BlockDriver, CheckResult, ImageDetails, LayerStatus, OpenContext, PersistentBitmaps, Preallocation, RepairMode, SnapshotInfo, SnapshotSpec,
  StatusOptions, WriteHooks, WriteZeroesOptions,
} from '../../block/types.js'
import type { ClusterCrypto } from './crypto-api.js'
import {
  AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZSTD, CRYPT_NONE,
  INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_DIRTY, INCOMPAT_EXTL2, type Qcow2Header,
} from './header.js'
import { Geometry, decodeCompressed, entryOffset, standardHost, subclusterStatus, OFLAG_COMPRESSED_HI, OFLAG_ZERO_LO, type EntryContext } from './layout.js'
import { hexAlt } from '../../cli/cfmt.js'
import type { Qcow2Snapshot } from './snapshots.js'
import type { LoadedBitmap } from './bitmap-load.js'
import { Qcow2Bitmaps } from './bitmap-store.js'
import { QCOW2_AMEND_OPTIONS } from './amend-options.js'
import type { SecretStore } from '../../block/secrets.js'
import { MAX_L1_BYTES, readQcow2Metadata, validateTable } from './open.js'
import { readTable } from './table-io.js'
import type { Qcow2Writer } from './write.js'
import { QCOW2_CREATE_OPTIONS } from './option-specs.js'
import { CompressedReader } from './compressed-reader.js'

/**
 * The decompressor (zlib, zstd-napi) is loaded on the first compressed
 * cluster: most opens (info, map, uncompressed reads) never need it.
 */
let compressModule: Promise<typeof import('./compress.js')> | undefined
const loadCompress = (): Promise<typeof import('./compress.js')> => (compressModule ??= import('./compress.js'))

/**
 * How many L2 entries from index `idx` on (at most `limit`) are all zero,
 * i.e. unallocated clusters. Sparse images are mostly such runs, so this
 * compares raw bytes rather than decoding entries.
 */
function zeroEntryRun (l2: Buffer, idx: number, limit: number, entrySize: number): number {
  // blocks of entries are compared with zeros natively (memcmp), large ones
  // first, then smaller ones; the last few entries are looked at one by one
  let n = 0
  for (const block of ZERO_BLOCK_ENTRIES) {
    const bytes = block * entrySize
    while (n + block <= limit) {
      const start = (idx + n) * entrySize
      if (l2.compare(ZERO_BLOCK, 0, bytes, start, start + bytes) !== 0) break
      n += block
    }
  }
  return n
}
/** block sizes for zeroEntryRun, in entries, largest first (ending with 1) */
const ZERO_BLOCK_ENTRIES = [512, 32, 1]
const ZERO_BLOCK = Buffer.alloc(512 * 16)

/** State shared by an image and the snapshot views opened from it. */
export interface Qcow2Shared {
  header: Qcow2Header
  geo: Geometry
  /** where data clusters live: the image file, or the external data file */
  dataStore: ByteStore
  crypto: ClusterCrypto | null
  snapshots: Qcow2Snapshot[]
  /** persistent bitmaps: the directory as loaded at open (or last stored) */
  bitmaps: LoadedBitmap[]
  /** the bitmaps in use (loaded and tracking writes when the image is writable) */
  bitmapStore?: Qcow2Bitmaps
  metadataCache: ClusterCache
  clusterCache: ClusterCache
  /** cache key owner for tables read from the image file */
  owner: number
  warn: (m: string, opts?: { prefixed?: boolean }) => void
  corruptionReported: boolean
  /** the write path of a read-write image (changed L2 tables live there until flushed) */
  writer?: Qcow2Writer
  /** computed on first use by metadataPreallocated() */
  metadataPrealloc?: Promise<boolean>
}

/**
 * A run of same-status clusters. `host` keeps runs of allocated clusters
 * host-contiguous (it is reported only when `mapped`: encrypted data has no
 * plain host bytes to show); a compressed cluster is a run of its own
 * (`solo`), as qemu reports them, unless the query allows runs of them
 * (StatusOptions); `compressed` then holds their L2 entries.
 */
interface Run { kind: LayerStatus['kind'], host?: number, length: number, mapped: boolean, solo: boolean, compressed?: number[] }

/**
 * What layerStatus answers for compressed clusters: their L2 entry words
 * ride along (hi and lo of each cluster in turn, from the one holding the
 * queried offset), so reading or prefetching them needs no second lookup.
 */
interface CompressedStatus extends LayerStatus { compressedEntries?: number[] }

export class Qcow2Image extends ImageBase {
  readonly format = 'qcow2'
  /** made on the first compressed cluster read */
  private compressed?: CompressedReader

  constructor (
    filename: string, store: ByteStore, size: number, readOnly: boolean,
    readonly shared: Qcow2Shared,
    /** the active L1 table (or a snapshot's), big-endian u64 entries */
    public l1: Buffer,
    private readonly ownsStore = true,
  ) {
    super(filename, store, size, readOnly)
  }

  get header (): Qcow2Header { return this.shared.header }
  get geo (): Geometry { return this.shared.geo }

  /** how this image's L2 entries are read: the v3 zero flag, host offset 0 in a data file */
  get entryContext (): EntryContext {
    return { zeroFlag: this.header.version >= 3, dataFile: (this.header.incompatible & INCOMPAT_DATA_FILE) !== 0n }
  }

  /**
   * Whether the image file looks metadata-preallocated (many more clusters
   * in use than the file really occupies); only then does block status ask
   * the host file about holes under data clusters, as qemu does.
   */
  metadataPreallocated (): Promise<boolean> {
    this.shared.metadataPrealloc ??= import('./prealloc.js')
      .then(m => m.detectMetadataPreallocation(this.store, this.header))
      .catch(() => false)
    return this.shared.metadataPrealloc
  }

  /** Report metadata corruption the way qemu does, and fail the request with EIO. */
  corruption (message: string): BlockError {
    const writer = this.shared.writer
    if (writer && !this.readOnly) {
      // a writable image is marked corrupt, as qemu does (the header write is not awaited)
      void writer.markCorrupt(message)
      return new BlockError(message, 'EIO')
    }
    if (!this.shared.corruptionReported) {
      this.shared.corruptionReported = true
      this.shared.warn(`qcow2: Image is corrupt: ${message}; further non-fatal corruption events will be suppressed\n`)
    }
    return new BlockError(message, 'EIO')
  }

  /** L2 table offset for L1 index `i` (0 = none). */
  l2OffsetAt (i: number): number {
    if (i * 8 + 8 > this.l1.length) return 0
    return entryOffset(this.l1.readUInt32BE(i * 8), this.l1.readUInt32BE(i * 8 + 4))
  }

  /** The L2 table at `l2Offset` (shared, cached; do not modify). */
  async getL2 (l2Offset: number, l1Index: number): Promise<Buffer> {
    const cs = this.geo.clusterSize
    if (l2Offset % cs !== 0) {
      throw this.corruption(`L2 table offset ${hexAlt(l2Offset)} unaligned (L1 index: ${hexAlt(l1Index)})`)
    }
    return this.cachedL2(l2Offset) ?? this.shared.metadataCache.get(this.shared.owner, l2Offset, async () => {
      const buf = Buffer.allocUnsafe(cs)
      await this.store.read(buf, l2Offset)
      return buf
    })
  }

  /** The L2 table at `l2Offset` if it is in memory now (changed by the writer, or cached). */
  private cachedL2 (l2Offset: number): Buffer | undefined {
    return this.shared.writer?.tables.get(l2Offset) ?? this.shared.metadataCache.peek(this.shared.owner, l2Offset)
  }

  async layerStatus (offset: number, length: number, opts?: StatusOptions): Promise<LayerStatus> {
    const g = this.geo
    // like qemu, one answer never goes past the end of the L2 table it comes from
    // (where answers stop decides where convert cuts its chunks, hence its holes),
    // unless the caller merges answers anyway (map of a sparse 1 TiB image:
    // a few dozen answers instead of one per table)
    const wide = opts?.wide === true
    const compressedRuns = wide || opts?.compressedRuns === true
    const end = Math.min(offset + length, this.size, wide ? Infinity : (g.l1Index(offset) + 1) * g.l2Coverage)
    const entryCtx = this.entryContext
    const crypto = this.shared.crypto
    let first: Run | undefined
    let pos = offset
    // extend the run while the next piece has the same kind (and contiguous host bytes)
    const add = (kind: Run['kind'], host: number | undefined, len: number, solo = false): boolean => {
      if (!first) { first = { kind, host, length: len, mapped: host !== undefined && !crypto, solo }; return true }
      if (first.kind !== kind || first.solo || solo) return false
      if ((first.host === undefined) !== (host === undefined)) return false
      if (host !== undefined && first.host! + first.length !== host) return false
      first.length += len
      return true
    }
    outer:
    while (pos < end) {
      const l1i = g.l1Index(pos)
      const l2Offset = this.l2OffsetAt(l1i)
      if (l2Offset === 0) {
        const stop = Math.min((l1i + 1) * g.l2Coverage, end)
        if (!add('unallocated', undefined, stop - pos)) break
        pos = stop
        continue
      }
      if (first && l2Offset % g.clusterSize !== 0) break // reported by the next request
      // (a table in memory is used at once: no await, which a sequential reader pays per cluster)
      let l2 = l2Offset % g.clusterSize === 0 ? this.cachedL2(l2Offset) : undefined
      if (!l2) {
        try {
          l2 = await this.getL2(l2Offset, l1i)
        } catch (e) {
          // (only a wide query gets here with a run in hand: that run is the answer; the error is the next request's)
          if (first) break
          throw e
        }
      }
      const tableEnd = Math.min((l1i + 1) * g.l2Coverage, end)
      while (pos < tableEnd) {
        const idx = g.l2Index(pos)
        const e = idx * g.l2EntrySize
        const hi = l2.readUInt32BE(e)
        const lo = l2.readUInt32BE(e + 4)
        const bmHi = g.extendedL2 ? l2.readUInt32BE(e + 8) : 0
        const bmLo = g.extendedL2 ? l2.readUInt32BE(e + 12) : 0
        const inCluster = pos % g.clusterSize
        if ((hi | lo | bmHi | bmLo) === 0 && inCluster === 0) {
          // fast path for sparse tables: a run of all-zero entries is unallocated clusters
          const limit = Math.min(g.l2Entries - idx, Math.ceil((tableEnd - pos) / g.clusterSize))
          const n = zeroEntryRun(l2, idx, limit, g.l2EntrySize)
          const len = Math.min(n * g.clusterSize, tableEnd - pos)
          if (!add('unallocated', undefined, len)) break outer
          pos += len
          continue
        }
        const sc = Math.floor(inCluster / g.subclusterSize)
        const st = subclusterStatus(g, hi, lo, bmHi, bmLo, sc, entryCtx)
        const stopInCluster = st.kind === 'compressed' ? g.clusterSize : (sc + st.count) * g.subclusterSize
        const len = Math.min(stopInCluster - inCluster, tableEnd - pos)
        // a broken entry ends the run before it; it is reported when a request starts there (as qemu)
        if (st.kind === 'invalid') {
          if (first) break outer
          throw this.corruption(`Invalid cluster entry found  (L2 offset: ${hexAlt(l2Offset)}, L2 index: ${hexAlt(idx)})`)
        }
        // where `pos` lives in the host file (runs stay host-contiguous; encrypted data does not show it)
        let host: number | undefined
        if (st.host !== undefined) {
          const clusterHost = st.host - sc * g.subclusterSize
          if (clusterHost % g.clusterSize !== 0) {
            if (first) break outer
            throw this.corruption(`Cluster allocation offset ${hexAlt(clusterHost)} unaligned (L2 offset: ${hexAlt(l2Offset)}, L2 index: ${hexAlt(idx)})`)
          }
          host = clusterHost + inCluster
        }
        let ok: boolean
        switch (st.kind) {
          case 'compressed':
            ok = add('data', undefined, len, !compressedRuns)
            if (ok && !wide) (first!.compressed ??= []).push(hi, lo)
            break
          case 'normal': ok = add('data', host, len); break
          case 'zero': ok = add('zero', host, len); break
          default: ok = add('unallocated', host, len)
        }
        if (!ok) break outer
        pos += len
        if (st.kind === 'normal' && !g.extendedL2) pos = this.extendPlainRun(l2, pos, tableEnd, first!, entryCtx.zeroFlag)
      }
    }
    if (!first) return { kind: 'unallocated', length: Math.max(end - offset, 0) }
    const r = first as Run
    const status: CompressedStatus = { kind: r.kind, length: r.length }
    if (r.compressed) status.compressedEntries = r.compressed
    if (r.mapped) {
      status.hostOffset = r.host
      status.store = this.shared.dataStore
      // as qemu, look for holes in the host file only when the image seems metadata-preallocated
      if (r.kind === 'data' && await this.metadataPreallocated()) status.checkHost = true
    }
    return status
  }

  /**
   * layerStatus's fast path for the common case of plain data: `run` ends
   * at `pos` (a cluster boundary) with a plain cluster; take the whole
   * clusters that follow in the table while each is plain too and sits
   * right after the last in the host file: what the general loop would
   * add one by one. Returns the new position.
   */
  private extendPlainRun (l2: Buffer, pos: number, tableEnd: number, run: Run, zeroFlag: boolean): number {
    const g = this.geo
    const cs = g.clusterSize
    let next = run.host! + run.length
    let e = g.l2Index(pos) * 8
    // the addon's loop, when every offset the run can reach is exact in a
    // double (an entry past 2^53 then matches in neither loop)
    const fits = Math.floor((tableEnd - pos) / cs)
    const fast = native()?.plainRunEntries
    if (fast && next + fits * cs <= Number.MAX_SAFE_INTEGER) {
      const n = fast(l2, e, fits, next, cs, zeroFlag ? 1 : 0)
      if (n >= 0) {
        run.length += n * cs
        return pos + n * cs
      }
    }
    // (DataView's getters are V8 builtins, fast even before this loop is
    // optimized; Buffer's readUInt32BE is JavaScript, slow until it is)
    const view = new DataView(l2.buffer, l2.byteOffset, l2.length)
    while (pos + cs <= tableEnd) {
      const hi = view.getUint32(e)
      const lo = view.getUint32(e + 4)
      if ((hi & OFLAG_COMPRESSED_HI) !== 0 || (zeroFlag && (lo & OFLAG_ZERO_LO) !== 0) || entryOffset(hi, lo) !== next) break
      run.length += cs
      pos += cs
      next += cs
      e += 8
    }
    return pos
  }

  protected async readData (buf: Buffer, offset: number, st: LayerStatus): Promise<void> {
    if (st.hostOffset !== undefined) {
      // one contiguous run of plain clusters (hostOffset is where `offset` lives): a single read
      await this.shared.dataStore.read(buf, st.hostOffset)
      return
    }
    const g = this.geo
    const entries = (st as CompressedStatus).compressedEntries
    if (entries) {
      // a run of compressed clusters, their L2 entries at hand
      await this.readCompressedRun(buf, offset, entries)
      return
    }
    let pos = offset
    const end = offset + buf.length
    const jobs: Promise<void>[] = []
    while (pos < end) {
      const clusterStart = pos - (pos % g.clusterSize)
      const stop = Math.min(clusterStart + g.clusterSize, end)
      const part = buf.subarray(pos - offset, stop - offset)
      jobs.push(this.readEncryptedPart(part, pos))
      pos = stop
    }
    await Promise.all(jobs)
  }

  /**
   * Copy [offset, offset+buf.length) out of the compressed clusters whose
   * entries layerStatus gave (see CompressedStatus). The clusters are asked
   * for together, so the ones not cached are read and inflated as a batch;
   * a failure is the one of the lowest offset, as reading them in order.
   */
  private async readCompressedRun (buf: Buffer, offset: number, entries: number[]): Promise<void> {
    const cs = this.geo.clusterSize
    const jobs: Array<Promise<void>> = []
    for (let pos = offset, i = 0; pos < offset + buf.length; i += 2) {
      const inCluster = pos % cs
      const part = buf.subarray(pos - offset, Math.min(pos - inCluster + cs, offset + buf.length) - offset)
      // (copied in the turn the cluster arrives: the cache may reuse its buffer a turn after eviction)
      jobs.push(this.compressedCluster(entries[i], entries[i + 1]).then(c => { c.copy(part, 0, inCluster, inCluster + part.length) }))
      pos += part.length
    }
    await settleInOrder(jobs)
  }

  /** A compressed cluster's bytes, through the cluster cache. */
  private compressedCluster (hi: number, lo: number): Promise<Buffer> {
    const desc = decodeCompressed(hi, lo, this.geo)
    return this.shared.clusterCache.get(this.shared.owner, desc.offset, () => this.compressedReader().load(desc.offset, desc.size))
  }

  private compressedReader (): CompressedReader {
    this.compressed ??= new CompressedReader(this.store, async (input, spans) => {
      const { decompressClusters } = await loadCompress()
      const cache = this.shared.clusterCache
      return decompressClusters(this.header.compressionType, input, spans, this.geo.clusterSize, n => cache.allocate(n))
    })
    return this.compressed
  }

  /**
   * Prefetching a run of data: compressed clusters (their L2 entries come
   * with the status) are brought into the cluster cache, as one batch.
   * Plain and encrypted data (never cached, see readEncryptedPart) have
   * nothing to prepare.
   */
  protected override async prefetchData (_offset: number, _length: number, st: LayerStatus): Promise<void> {
    const entries = (st as CompressedStatus).compressedEntries
    if (!entries || this.shared.crypto) return
    const jobs: Array<Promise<Buffer>> = []
    for (let i = 0; i < entries.length; i += 2) jobs.push(this.compressedCluster(entries[i], entries[i + 1]))
    await Promise.all(jobs)
  }

  /** The first two words of the L2 entry of the cluster holding `offset` (its L2 table must exist). */
  private async entryWords (offset: number): Promise<{ hi: number, lo: number }> {
    const g = this.geo
    const l1i = g.l1Index(offset)
    const l2 = await this.getL2(this.l2OffsetAt(l1i), l1i)
    const e = g.l2Index(offset) * g.l2EntrySize
    return { hi: l2.readUInt32BE(e), lo: l2.readUInt32BE(e + 4) }
  }

  /**
   * Read part of one encrypted cluster (data without a host offset that is
   * not compressed: compressed runs come with their entries, see readData).
   * Only the sectors the request covers are decrypted. Not cached: writes
   * re-encrypt clusters in place and a cache of plaintext would go stale.
   */
  private async readEncryptedPart (buf: Buffer, offset: number): Promise<void> {
    const g = this.geo
    const { hi, lo } = await this.entryWords(offset)
    const inCluster = offset % g.clusterSize
    const crypto = this.shared.crypto!
    const host = standardHost(hi, lo, this.entryContext.dataFile) ?? 0
    const ss = crypto.sectorSize
    const a = inCluster - (inCluster % ss)
    const b = Math.min(Math.ceil((inCluster + buf.length) / ss) * ss, g.clusterSize)
    const whole = a === inCluster && b === inCluster + buf.length
    const data = whole ? buf : Buffer.allocUnsafe(b - a)
    await this.shared.dataStore.read(data, host + a)
    crypto.decrypt(data, crypto.physicalIV ? host + a : offset - inCluster + a)
    if (!whole) data.copy(buf, 0, inCluster - a, inCluster - a + buf.length)
  }

  override async details (): Promise<ImageDetails> {
    const h = this.header
    const data: { [k: string]: JsonValue | undefined } = {
      compat: h.version >= 3 ? '1.1' : '0.10',
    }
    if (h.version >= 3) {
      // qemu shows the name whenever the extension is there, the raw flag with the data file bit
      data['data-file'] = h.dataFile
      if (h.incompatible & INCOMPAT_DATA_FILE) data['data-file-raw'] = (h.autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n
      data['extended-l2'] = (h.incompatible & INCOMPAT_EXTL2) !== 0n
      data['lazy-refcounts'] = (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n
      data.corrupt = (h.incompatible & INCOMPAT_CORRUPT) !== 0n
    }
    data['refcount-bits'] = 2 ** h.refcountOrder
    if (this.shared.crypto) data.encrypt = this.shared.crypto.info()
    if (this.shared.bitmaps.length > 0) {
      data.bitmaps = this.shared.bitmaps.map(b => ({ name: b.name, granularity: b.granularity, flags: b.flagNames }))
    }
    data['compression-type'] = h.compressionType === COMPRESSION_ZSTD ? 'zstd' : 'zlib'
    return {
      clusterSize: this.geo.clusterSize,
      encrypted: h.cryptMethod !== CRYPT_NONE,
      dirty: (h.incompatible & INCOMPAT_DIRTY) !== 0n,
      formatSpecific: { type: 'qcow2', data },
      snapshots: this.listSnapshots(),
    }
  }

  /** qemu-img check (and repair): src/formats/qcow2/check.ts, loaded when used */
  async check (repair?: RepairMode): Promise<CheckResult> {
    const { checkQcow2 } = await import('./check.js')
    return checkQcow2(this, repair)
  }

  listSnapshots (): SnapshotInfo[] {
    return this.shared.snapshots.map(s => ({
      id: s.id,
      name: s.name,
      vmStateSize: s.vmStateSize,
      dateSec: s.dateSec,
      dateNsec: s.dateNsec,
      vmClockNsec: s.vmClockNsec,
      icount: s.icount,
    }))
  }

  /** Find a snapshot by id or name (id first, as qemu does for a bare string). */
  findSnapshot (spec: SnapshotSpec): Qcow2Snapshot | undefined {
    const list = this.shared.snapshots
    if (spec.id !== undefined && spec.name !== undefined) return list.find(s => s.id === spec.id && s.name === spec.name)
    if (spec.id !== undefined) return list.find(s => s.id === spec.id)
    if (spec.name !== undefined) return list.find(s => s.name === spec.name)
    return undefined
  }

  /**
   * A read-only view of the disk as it was when the snapshot was taken (a
   * snapshot table entry, or an id/name to look up). The view shares this
   * image's file, caches and backing chain; closing it closes none of them.
   * Like qemu's temporary snapshot load (convert -l), the view keeps the
   * image's current size: past what the snapshot's L1 table covers it reads
   * as unallocated.
   */
  async openSnapshot (which: SnapshotSpec | Qcow2Snapshot): Promise<Qcow2Image> {
    const snap = 'l1TableOffset' in which ? which : this.findSnapshot(which)
    if (!snap) throw new BlockError('Can\'t find snapshot', 'ENOENT')
    const offset = snap.l1TableOffsetExact ?? BigInt(snap.l1TableOffset)
    validateTable('Snapshot L1 table', offset, snap.l1Size, 8, MAX_L1_BYTES, this.geo.clusterSize)
    const l1 = Buffer.alloc(snap.l1Size * 8)
    try {
      await readTable(this.store, l1, offset)
    } catch (e) {
      if (e instanceof BlockError) throw new BlockError('Failed to read l1 table for snapshot', e.errno)
      throw e
    }
    const view = new Qcow2Image(this.filename, this.store, this.size, true, this.shared, l1, false)
    view.backing = this.backing
    view.backingName = this.backingName
    view.backingFormat = this.backingFormat
    return view
  }

  // ---- the write path (src/formats/qcow2/write.ts) ----

  private writer (): Qcow2Writer {
    this.checkWritable()
    const w = this.shared.writer
    if (!w) throw new BlockError('Image is read-only', 'EACCES')
    return w
  }

  override async read (buf: Buffer, offset: number): Promise<void> {
    const w = this.shared.writer
    return w ? w.track(super.read(buf, offset)) : super.read(buf, offset)
  }

  // guest writes of every kind set the bits of enabled persistent bitmaps

  override async write (buf: Buffer, offset: number, hooks?: WriteHooks): Promise<void> {
    const w = this.writer()
    this.checkRange(offset, buf.length)
    await w.write(buf, offset, hooks)
    this.shared.bitmapStore?.markDirty(offset, buf.length)
  }

  override async writeZeroes (offset: number, length: number, opts?: WriteZeroesOptions): Promise<void> {
    const w = this.writer()
    this.checkRange(offset, length)
    await w.writeZeroes(offset, length, opts)
    this.shared.bitmapStore?.markDirty(offset, length)
  }

  override async discard (offset: number, length: number): Promise<void> {
    const w = this.writer()
    this.checkRange(offset, length)
    await w.discard(offset, length)
    this.shared.bitmapStore?.markDirty(offset, length)
  }

  async writeCompressed (buf: Buffer, offset: number, packed?: Buffer | null, hooks?: WriteHooks): Promise<void> {
    const w = this.writer()
    this.checkRange(offset, buf.length)
    await w.writeCompressed(buf, offset, packed, hooks)
    this.shared.bitmapStore?.markDirty(offset, buf.length)
  }

  async writePackedClusters (offset: number, packed: Buffer[], hooks?: WriteHooks): Promise<void> {
    const w = this.writer()
    const length = Math.min(packed.length * this.geo.clusterSize, this.size - offset)
    this.checkRange(offset, length)
    await w.writePackedClusters(offset, packed, hooks)
    this.shared.bitmapStore?.markDirty(offset, length)
  }

  async compressForWrite (buf: Buffer): Promise<Buffer | null> {
    const w = this.writer()
    return w.compressForWrite(buf)
  }

  persistentBitmaps (): PersistentBitmaps {
    this.shared.bitmapStore ??= new Qcow2Bitmaps(this, this.shared.bitmaps)
    return this.shared.bitmapStore
  }

  compressedClusterSize (): number { return this.geo.clusterSize }

  async resize (size: number, opts: { preallocation?: Preallocation, shrink?: boolean }): Promise<void> {
    const w = this.writer()
    const { resizeQcow2 } = await import('./resize.js')
    await resizeQcow2(this, w, size, opts.preallocation ?? 'off')
  }

  async amend (options: Record<string, string>, opts: { force: boolean, secrets?: SecretStore, progress?: (done: number, total: number) => void }): Promise<void> {
    this.writer()
    const { amendQcow2 } = await import('./amend.js')
    await amendQcow2(this, options, opts)
  }

  // ---- internal snapshots, backing file, emptying (commit/rebase/snapshot) ----

  async createSnapshot (name: string, date: { dateSec: number, dateNsec: number, vmClockNsec?: number }): Promise<void> {
    const w = this.writer()
    await (await import('./snapshot-ops.js')).createSnapshot(this, w, name, date)
  }

  async applySnapshot (spec: SnapshotSpec): Promise<void> {
    const w = this.writer()
    await (await import('./snapshot-ops.js')).applySnapshot(this, w, spec)
  }

  async deleteSnapshot (spec: SnapshotSpec): Promise<void> {
    const w = this.writer()
    await (await import('./snapshot-ops.js')).deleteSnapshot(this, w, spec)
  }

  async setBacking (name: string | undefined, format: string | undefined): Promise<void> {
    const w = this.writer()
    const { rewriteBacking } = await import('./header-rewrite.js')
    await w.mutex.run(() => rewriteBacking(this, name, format))
  }

  async makeEmpty (): Promise<void> {
    const w = this.writer()
    await (await import('./make-empty.js')).makeEmpty(this, w)
  }

  override async flush (): Promise<void> {
    const w = this.shared.writer
    if (w && !this.readOnly) await w.flush()
    else await super.flush()
  }

  protected override async closeLayer (): Promise<void> {
    if (!this.ownsStore) return
    const w = this.shared.writer
    if (w && !this.readOnly) {
      try {
        await this.shared.bitmapStore?.store()
        await w.flush()
      } catch (e) {
        await this.closeStores()
        throw e
      }
    }
    await this.closeStores()
  }

  private async closeStores (): Promise<void> {
    if (this.shared.dataStore !== this.store) await this.shared.dataStore.close()
    await this.store.close()
  }

  override async close (): Promise<void> {
    if (!this.ownsStore) { this.backing = null; return } // a snapshot view borrows its chain
    await super.close()
  }
}

export const qcow2Driver: BlockDriver = {
  name: 'qcow2',
  amendOptions: QCOW2_AMEND_OPTIONS,
  supportsCompression: true,
  // what qemu's qcow2 accepts at open; qimg honours data-file and encrypt.*, the cache and discard knobs need nothing
  runtimeOptions: [
    'lazy-refcounts', 'pass-discard-request', 'pass-discard-snapshot', 'pass-discard-other', 'overlap-check', 'overlap-check.*',
    'cache-size', 'l2-cache-size', 'l2-cache-entry-size', 'refcount-cache-size', 'cache-clean-interval',
    'encrypt.*', 'data-file', 'data-file.*',
  ],
  createOptions: QCOW2_CREATE_OPTIONS,
  async create (filename, options, ctx) {
    const { createQcow2 } = await import('./create.js')
    await createQcow2(filename, options, ctx)
  },
  async measure (options, input, ctx) {
    const { measureQcow2 } = await import('./measure.js')
    return measureQcow2(options, input, ctx)
  },
  async open (store: ByteStore, ctx: OpenContext) {
    const meta = await readQcow2Metadata(store, ctx)
    const shared: Qcow2Shared = {
      header: meta.header,
      geo: meta.geo,
      dataStore: meta.dataStore,
      crypto: meta.crypto,
      snapshots: meta.snapshots,
      bitmaps: meta.bitmaps,
      metadataCache: ctx.metadataCache,
      clusterCache: ctx.clusterCache,
      owner: newCacheOwner(),
      warn: ctx.warn,
      corruptionReported: false,
    }
    // qemu's block layer counts whole sectors: a size that is not a multiple of 512 rounds down
    const size = Math.floor(meta.header.size / 512) * 512
    const img = new Qcow2Image(ctx.filename, store, size, ctx.readOnly, shared, meta.l1)
    img.backingName = meta.header.backingFile
    img.backingFormat = meta.header.backingFormat
    // check (even read-write, to repair) works on the file directly and needs no write path
    if (!ctx.readOnly && !ctx.check) {
      try {
        const { openWriter } = await import('./open-write.js')
        shared.writer = await openWriter(img)
        const { openBitmapsForWriting } = await import('./bitmap-open.js')
        shared.bitmapStore = await openBitmapsForWriting(img)
      } catch (e) {
        await img.close().catch(() => undefined)
        throw e
      }
    }
    return img
  },
}
