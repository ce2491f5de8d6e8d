// What the check walk needs beyond the active L1 table: the snapshot table
// read straight from the file (with the byte size it occupies and the
// entries qemu calls incomplete), the encryption header and the bitmap
// directory with its bitmap tables.
import { type CheckContext } from './check-context.js'
import { AUTOCLEAR_BITMAPS, CRYPT_LUKS } from './header.js'
import { joinOffset, type Offset, type WalkLayout } from './check-walk.js'
import { decodeSnapshots, type Qcow2Snapshot } from './snapshots.js'

export interface RawSnapshot {
  id: string
  name: string
  l1TableOffset: number
  l1Offset: Offset
  l1Size: number
  /** the entry has less extra data than its image version requires */
  incomplete: boolean
  extraSize: number
  /** the whole entry, as a rewrite of the table encodes it again */
  entry: Qcow2Snapshot
}

/** qemu's limits on the snapshot table */
export const MAX_SNAPSHOTS = 65536
export const MAX_SNAPSHOT_EXTRA = 1024

/** fixed part of a snapshot table entry */
const SNAPSHOT_FIXED = 40
/** extra data fields qemu knows (vm_state_size_large, disk_size, icount) */
const KNOWN_EXTRA = 24
/** v3 entries must carry vm_state_size_large and disk_size */
const V3_MIN_EXTRA = 16

/**
 * Read the snapshot table entry by entry (bytes past the end of the file
 * read as zeros, as in qemu). Extra data beyond qemu's limit is not kept:
 * only a repair that drops it can use such an entry.
 */
export async function readSnapshotTable (ctx: CheckContext): Promise<{ snapshots: RawSnapshot[], size: number }> {
  const h = ctx.header
  const snapshots: RawSnapshot[] = []
  if (h.nbSnapshots === 0) return { snapshots, size: 0 }
  let pos = h.snapshotsOffset
  const fixed = Buffer.alloc(SNAPSHOT_FIXED)
  for (let i = 0; i < Math.min(h.nbSnapshots, MAX_SNAPSHOTS); i++) {
    await ctx.read(fixed, pos)
    const idLen = fixed.readUInt16BE(12)
    const nameLen = fixed.readUInt16BE(14)
    const extraLen = fixed.readUInt32BE(36)
    const keptExtra = extraLen > MAX_SNAPSHOT_EXTRA ? Math.min(extraLen, KNOWN_EXTRA) : extraLen
    const extra = Buffer.alloc(keptExtra)
    await ctx.read(extra, pos + SNAPSHOT_FIXED)
    pos += SNAPSHOT_FIXED + extraLen
    const strings = Buffer.alloc(idLen + nameLen)
    await ctx.read(strings, pos)
    pos += idLen + nameLen
    pos = Math.ceil(pos / 8) * 8
    // decode through the table codec: the fixed part, the kept extra data, id and name
    const one = Buffer.alloc(Math.ceil((SNAPSHOT_FIXED + keptExtra + strings.length) / 8) * 8)
    Buffer.concat([fixed, extra, strings]).copy(one)
    one.writeUInt32BE(keptExtra, 36)
    const entry = decodeSnapshots(one, 1).snapshots[0]
    snapshots.push({
      id: entry.id,
      name: entry.name,
      l1TableOffset: entry.l1TableOffset,
      l1Offset: joinOffset(fixed.readUInt32BE(0), fixed.readUInt32BE(4)),
      l1Size: entry.l1Size,
      incomplete: h.version >= 3 && extraLen < V3_MIN_EXTRA,
      extraSize: extraLen,
      entry,
    })
  }
  return { snapshots, size: pos - h.snapshotsOffset }
}

/**
 * The walk's view of everything besides the L1 tables. `bitmaps` are the
 * persistent bitmaps open() loaded (only when the autoclear bit says they
 * are consistent; stale ones are leaks).
 */
export function walkLayout (ctx: CheckContext, snapshots: RawSnapshot[], snapshotsSize: number,
  bitmaps: { tableOffset: number, tableSize: number }[]): WalkLayout {
  const h = ctx.header
  const layout: WalkLayout = { snapshots, snapshotsOffset: h.snapshotsOffset, snapshotsSize }
  if (h.cryptMethod === CRYPT_LUKS && h.cryptoHeader && h.cryptoHeader.length > 0) layout.crypto = h.cryptoHeader
  const b = h.bitmapsExt
  if (b && (h.autoclear & AUTOCLEAR_BITMAPS) && bitmaps.length > 0) {
    layout.bitmaps = {
      directoryOffset: b.directoryOffset,
      directorySize: b.directorySize,
      tables: bitmaps.map(t => ({ offset: t.tableOffset, entries: t.tableSize })),
    }
  }
  return layout
}
