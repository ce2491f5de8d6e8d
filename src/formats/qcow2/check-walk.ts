// The metadata walk: every structure that uses host clusters is visited and
// counted into a RefArray, which is what the stored refcounts must equal.
// Along the way entries that cannot be right are reported with qemu-img's
// messages, and the active layer's allocation statistics are gathered.
import { BlockError, strerror } from '../../cli/errors.js'
import { altHex, CheckAbort, type CheckContext, FIX_ERRORS, hex, hex64 } from './check-context.js'
import type { RefArray } from './check-refs.js'
import type { StoredRefcounts } from './check-stored.js'
import { OFLAG_COMPRESSED_HI, OFLAG_COPIED_HI } from './layout.js'

/** qemu's limit on an L1 table (32 MiB) */
export const MAX_L1_ENTRIES = (32 << 20) / 8

/** Everything besides the active L1 that references clusters, as the walk needs it. */
export interface WalkLayout {
  /** l1TableOffset is Infinity when beyond 2^53; l1Offset holds it exactly */
  snapshots: { id: string, name: string, l1TableOffset: number, l1Offset: Offset, l1Size: number }[]
  snapshotsOffset: number
  snapshotsSize: number
  crypto?: { offset: number, length: number }
  bitmaps?: { directoryOffset: number, directorySize: number, tables: { offset: number, entries: number }[] }
}

/** An offset of up to 64 bits: a number when exact, a bigint beyond 2^53 (always past any real file). */
export type Offset = number | bigint

export function joinOffset (hi: number, lo: number): Offset {
  return hi >= 0x200000 ? (BigInt(hi) << 32n) | BigInt(lo >>> 0) : hi * 0x100000000 + (lo >>> 0)
}

/** bits 9-55 of a table entry (L1, L2, bitmap table) */
function tableOffset (hi: number, lo: number): Offset {
  return joinOffset(hi & 0x00ffffff, (lo & 0xfffffe00) >>> 0)
}

/** Count one reference to every cluster [offset, offset+size) touches. */
export function countRegion (ctx: CheckContext, refs: RefArray, offset: Offset, size: number): void {
  if (size <= 0) return
  if (typeof offset === 'bigint' || offset + size - ctx.fileSize >= ctx.cs) {
    ctx.say(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`)
    ctx.res.corruptions++
    return
  }
  const first = Math.floor(offset / ctx.cs)
  const last = Math.floor((offset + size - 1) / ctx.cs)
  refs.grow(last + 1)
  for (let k = first; k <= last; k++) countCluster(ctx, refs, k)
}

/** One more reference to cluster k (which lies inside `refs`). */
function countCluster (ctx: CheckContext, refs: RefArray, k: number): void {
  if (refs.bump(k)) return
  ctx.say(`ERROR: overflow cluster offset=0x${hex(k * ctx.cs)}`)
  ctx.say('Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing')
  ctx.res.corruptions++
}

/** Read a table; bytes past the end of the file read as zeros, offsets beyond any file give all zeros. */
async function readTable (ctx: CheckContext, offset: Offset, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size)
  if (typeof offset === 'number' && offset < ctx.fileSize) await ctx.read(buf, offset)
  return buf
}

/** Walk one L1 table and its L2 tables. `active` gathers the allocation statistics. */
export async function walkL1 (ctx: CheckContext, refs: RefArray, l1Offset: Offset, l1Size: number, active: boolean): Promise<void> {
  countRegion(ctx, refs, l1Offset, l1Size * 8)
  if (l1Size === 0) return
  const l1 = await readTable(ctx, l1Offset, l1Size * 8)
  const tables = new L2Reader(ctx, l1, (hi, lo) => hi !== 0 || lo !== 0)
  for (let i = 0; i < l1Size; i++) {
    const hi = l1.readUInt32BE(i * 8)
    const lo = l1.readUInt32BE(i * 8 + 4)
    // reserved: bits 1-8 and 56-62
    if ((lo & 0x1fe) !== 0 || (hi & 0x7f000000) !== 0) {
      ctx.say(`ERROR found L1 entry with reserved bits set: ${hex64(hi, lo)}`)
      ctx.res.corruptions++
    }
    // any non-zero entry names an L2 table, even one at offset 0 (qemu walks the header then)
    if (hi === 0 && lo === 0) continue
    const l2Offset = tableOffset(hi, lo)
    countRegion(ctx, refs, l2Offset, ctx.cs)
    if (((lo & 0xfffffe00) >>> 0) % ctx.cs !== 0) {
      ctx.say(`ERROR l2_offset=${hex(l2Offset)}: Table is not cluster aligned; L1 entry corrupted`)
      ctx.res.corruptions++
    }
    await walkL2(ctx, refs, l2Offset, active, await tables.get(i))
  }
}

const L2_READ_AHEAD = 8

/**
 * The L2 tables of an L1 table, read a few ahead of the one being walked
 * (in L1 order). `wanted` says which L1 entries name a table to read.
 */
export class L2Reader {
  private readonly pending = new Map<number, Promise<Buffer>>()
  private ahead = 0
  private writes: number

  constructor (private readonly ctx: CheckContext, private readonly l1: Buffer, private readonly wanted: (hi: number, lo: number) => boolean) {
    this.writes = ctx.tableWrites
  }

  /** The table of L1 entry i (which must be wanted); entries must be asked for in increasing order. */
  async get (i: number): Promise<Buffer> {
    if (this.ctx.tableWrites !== this.writes) {
      // a repair rewrote a table entry: tables read ahead may be stale
      this.pending.clear()
      this.ahead = i
      this.writes = this.ctx.tableWrites
    }
    this.prefetch(i)
    const table = this.pending.get(i) ?? this.read(i)
    this.pending.delete(i)
    this.prefetch(i + 1)
    return table
  }

  private read (k: number): Promise<Buffer> {
    const hi = this.l1.readUInt32BE(k * 8)
    const lo = this.l1.readUInt32BE(k * 8 + 4)
    return readTable(this.ctx, tableOffset(hi, lo), this.ctx.cs)
  }

  private prefetch (from: number): void {
    this.ahead = Math.max(this.ahead, from)
    const n = this.l1.length / 8
    while (this.ahead < n && this.pending.size < L2_READ_AHEAD) {
      const k = this.ahead++
      if (!this.wanted(this.l1.readUInt32BE(k * 8), this.l1.readUInt32BE(k * 8 + 4))) continue
      const p = this.read(k)
      p.catch(() => undefined) // awaited (and reported) when its turn comes
      this.pending.set(k, p)
    }
  }
}

async function walkL2 (ctx: CheckContext, refs: RefArray, l2Offset: Offset, active: boolean, l2: Buffer): Promise<void> {
  const g = ctx.geo
  const cs = ctx.cs
  const ext = g.extendedL2
  const dataFile = ctx.hasDataFile
  let next = 0 // where the next cluster would be if allocation were contiguous
  for (let j = 0; j < g.l2Entries; j++) {
    const e = j * g.l2EntrySize
    const hi = l2.readUInt32BE(e)
    const lo = l2.readUInt32BE(e + 4)
    const zeroBits = ext ? l2.readUInt32BE(e + 8) : 0
    const allocBits = ext ? l2.readUInt32BE(e + 12) : 0

    if (hi & OFLAG_COMPRESSED_HI) {
      const { offset, size } = compressedRegion(hi, lo, ctx.clusterBits)
      if (hi & OFLAG_COPIED_HI) {
        ctx.say(`ERROR: coffset=0x${hex(offset)}: copied flag must never be set for compressed clusters`)
        ctx.res.corruptions++
      }
      if (dataFile) {
        ctx.say(`ERROR compressed cluster ${j} with data file, entry=0x${hex64(hi, lo)}`)
        ctx.res.corruptions++
        continue
      }
      if (ext && (zeroBits !== 0 || allocBits !== 0)) {
        ctx.say(`ERROR compressed cluster ${j} with non-zero subcluster allocation bitmap, entry=0x${hex64(hi, lo)}`)
        ctx.res.corruptions++
        continue
      }
      if (active) {
        ctx.res.allocated++
        ctx.res.compressed++
        // compressed clusters share sectors: qemu counts them all as fragmented
        ctx.res.fragmented++
      }
      countRegion(ctx, refs, offset, size)
      continue
    }

    // reserved: bits 1-8 and 56-61
    if ((lo & 0x1fe) !== 0 || (hi & 0x3f000000) !== 0) {
      ctx.say(`ERROR found l2 entry with reserved bits set: ${hex64(hi, lo)}`)
      ctx.res.corruptions++
    }
    const offset = tableOffset(hi, lo)
    const zeroFlag = !ext && (lo & 1) !== 0
    // offset 0 is a valid place in an external data file; the copied flag tells it from "unallocated"
    const allocated = offset !== 0 || (dataFile && !zeroFlag && (hi & OFLAG_COPIED_HI) !== 0)
    if (ext) {
      if (allocated && (allocBits & zeroBits) !== 0) {
        ctx.say(`ERROR offset=${hex(offset)}: Allocated cluster has corrupted subcluster allocation bitmap`)
        ctx.res.corruptions++
      } else if (!allocated && allocBits !== 0) {
        ctx.say('ERROR: Unallocated cluster has non-zero subcluster allocation map')
        ctx.res.corruptions++
      }
    }
    if (!allocated) continue
    const unaligned = ((lo & 0xfffffe00) >>> 0) % cs !== 0
    if (unaligned && zeroFlag && (ctx.fix & FIX_ERRORS)) {
      // a preallocated zero cluster loses nothing by dropping its bogus host offset
      ctx.say(`Repairing offset=${hex(offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`)
      await rewriteEntryAsZero(ctx, l2Offset, j)
      ctx.res.corruptionsFixed++
      continue
    }
    if (active) {
      ctx.res.allocated++
      if (next !== 0 && offset !== next) ctx.res.fragmented++
      next = typeof offset === 'number' ? offset + cs : -1
    }
    if (unaligned) {
      const what = zeroFlag ? 'Preallocated' : 'Data'
      ctx.say(`ERROR offset=${hex(offset)}: ${what} cluster is not properly aligned; L2 entry corrupted.`)
      ctx.res.corruptions++
    }
    if (dataFile) continue
    if (!unaligned && typeof offset === 'number' && offset + cs <= ctx.fileSize) countCluster(ctx, refs, offset / cs)
    else countRegion(ctx, refs, offset, cs)
  }
}

/** Replace a standard L2 entry with a plain "reads as zero" entry. */
async function rewriteEntryAsZero (ctx: CheckContext, l2Offset: Offset, index: number): Promise<void> {
  const entry = Buffer.alloc(8)
  entry.writeUInt32BE(1, 4)
  try {
    if (typeof l2Offset !== 'number') throw new CheckAbort('Input/output error', 'EIO')
    ctx.tableWrites++
    await ctx.guard!.write(entry, l2Offset + index * 8, ['active L2 table'])
  } catch (e) {
    const errno = (e as { errno?: string }).errno ?? 'EIO'
    ctx.say(ctx.dead ? 'ERROR: Overlap check failed' : `ERROR: Failed to overwrite L2 table entry: ${strerror(errno)}`)
    throw new CheckAbort(strerror(errno), errno)
  }
}

/** Host byte range of a compressed cluster: from its offset to the end of its last sector. */
export function compressedRegion (hi: number, lo: number, clusterBits: number): { offset: Offset, size: number } {
  const shift = 62 - (clusterBits - 8)
  const entry = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0)
  const raw = entry & ((1n << BigInt(shift)) - 1n)
  const sectors = Number((entry >> BigInt(shift)) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1
  const size = sectors * 512 - Number(raw & 511n)
  const offset: Offset = raw < 2n ** 53n ? Number(raw) : raw
  return { offset, size }
}

/**
 * Count everything that uses clusters, in qemu's order (the order of the
 * messages depends on it): header, active L1/L2, snapshots' L1/L2, snapshot
 * table, refcount table, encryption header, bitmaps, refcount blocks.
 * Returns true when the refcount structure itself is broken and must be rebuilt.
 */
export async function countReferences (ctx: CheckContext, refs: RefArray, stored: StoredRefcounts, layout: WalkLayout): Promise<boolean> {
  const h = ctx.header
  countRegion(ctx, refs, 0, ctx.cs)
  await walkL1(ctx, refs, h.l1TableOffset, h.l1Size, true)

  for (const sn of layout.snapshots) {
    if (BigInt(sn.l1Offset) % BigInt(ctx.cs) !== 0n) {
      ctx.say(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=${altHex(sn.l1Offset)}: L1 table is not cluster aligned; snapshot table entry corrupted`)
      ctx.res.corruptions++
      continue
    }
    if (sn.l1Size > MAX_L1_ENTRIES) {
      ctx.say(`ERROR snapshot ${sn.id} (${sn.name}) l1_size=${altHex(sn.l1Size)}: L1 table is too large; snapshot table entry corrupted`)
      ctx.res.corruptions++
      continue
    }
    await walkL1(ctx, refs, sn.l1Offset, sn.l1Size, false)
  }
  countRegion(ctx, refs, layout.snapshotsOffset, layout.snapshotsSize)
  countRegion(ctx, refs, h.refcountTableOffset, h.refcountTableClusters * ctx.cs)
  if (layout.crypto) countRegion(ctx, refs, layout.crypto.offset, layout.crypto.length)
  if (layout.bitmaps) await countBitmaps(ctx, refs, layout.bitmaps)
  return countRefblocks(ctx, refs, stored)
}


async function countBitmaps (ctx: CheckContext, refs: RefArray, b: NonNullable<WalkLayout['bitmaps']>): Promise<void> {
  countRegion(ctx, refs, b.directoryOffset, b.directorySize)
  for (const t of b.tables) {
    countRegion(ctx, refs, t.offset, t.entries * 8)
    // only the part inside the file can hold entries (the rest reads as zeros)
    const inFile = Math.min(t.entries, Math.floor((ctx.fileSize - t.offset) / 8))
    if (inFile <= 0) continue
    const table = await readTable(ctx, t.offset, inFile * 8)
    for (let i = 0; i < inFile; i++) {
      const off = tableOffset(table.readUInt32BE(i * 8), table.readUInt32BE(i * 8 + 4))
      if (off !== 0) countRegion(ctx, refs, off, ctx.cs)
    }
  }
}

/** The refcount blocks themselves, with the checks on refcount table entries. */
async function countRefblocks (ctx: CheckContext, refs: RefArray, stored: StoredRefcounts): Promise<boolean> {
  let rebuild = false
  for (let i = 0; i < stored.tableEntries; i++) {
    const [hi, lo] = stored.entry(i)
    if ((lo & 0x1ff) !== 0) {
      ctx.say(`ERROR refcount table entry ${i} has reserved bits set`)
      ctx.res.corruptions++
      rebuild = true
      continue
    }
    if (hi === 0 && lo === 0) continue
    if ((lo >>> 0) % ctx.cs !== 0) {
      ctx.say(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`)
      ctx.res.corruptions++
      rebuild = true
      continue
    }
    const offset = stored.blockOffset(i)
    const cluster = offset / ctx.cs
    if (cluster >= ctx.fileClusters) {
      if (ctx.fix & FIX_ERRORS) {
        // qemu grows the file so the block exists (as zeros); the rebuild then replaces it
        ctx.say(`Repairing refcount block ${i} is outside image`)
        ctx.res.corruptions++
        if (hi >= 0x80000000) {
          // a negative file size: refused before the file is touched
          ctx.say(`ERROR could not resize image: ${strerror('EINVAL')}`)
          rebuild = true
          continue
        }
        try {
          if (!Number.isFinite(offset)) throw new BlockError('File too large', 'EFBIG')
          await ctx.store.truncate(offset + ctx.cs)
        } catch (e) {
          const reason = strerror((e as { errno?: string }).errno)
          ctx.sayReport(`Could not resize file: ${reason}`)
          ctx.say(`ERROR could not resize image: ${reason}`)
          rebuild = true
          continue
        }
        await ctx.refreshFileSize()
        refs.grow(ctx.fileClusters)
      } else {
        ctx.say(`ERROR refcount block ${i} is outside image`)
        ctx.res.corruptions++
        continue
      }
    }
    countRegion(ctx, refs, offset, ctx.cs)
    const n = refs.get(cluster)
    if (n !== 1) {
      ctx.say(`ERROR refcount block ${i} refcount=${n}`)
      ctx.res.corruptions++
      rebuild = true
    }
  }
  return rebuild
}
