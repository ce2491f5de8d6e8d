// Replacing the internal snapshot table crash-safely: the new table goes to
// newly allocated clusters (its refcounts on disk first), one header write
// switches nb_snapshots and snapshots_offset together, and only then is the
// old table's space released (queued; applied by the caller's next flush).
import { BlockError } from '../../cli/errors.js'
import { writeHeaderSnapshots } from './header-update.js'
import { encodeSnapshots, type Qcow2Snapshot } from './snapshots.js'
import type { Qcow2Image } from './driver.js'
import type { Qcow2Writer } from './write.js'
import type { TreeRefcounts } from './snapshot-refs.js'

/** Fixed part of a table entry */
const ENTRY_HEADER = 40

/** qemu's limit on the number of snapshots */
export const MAX_SNAPSHOTS = 65536

/**
 * Bytes the table on disk occupies, from its entries' own length fields
 * (older writers may have used shorter extra data than we write).
 */
async function tableSizeOnDisk (img: Qcow2Image): Promise<number> {
  const h = img.header
  const head = Buffer.alloc(ENTRY_HEADER)
  let pos = 0
  let end = 0
  for (let i = 0; i < h.nbSnapshots; i++) {
    pos = (pos + 7) & ~7
    await img.store.read(head, h.snapshotsOffset + pos)
    pos += ENTRY_HEADER + head.readUInt32BE(36) + head.readUInt16BE(12) + head.readUInt16BE(14)
    end = pos
  }
  return end
}

/**
 * The table as qemu writes it: every entry with 24 bytes of known extra data
 * (disk size filled in for entries that had none), entries 8-byte aligned,
 * the last one without padding.
 */
export function encodeTable (snapshots: Qcow2Snapshot[], imageSize: number): Buffer {
  if (snapshots.length === 0) return Buffer.alloc(0)
  const full = encodeSnapshots(snapshots.map(s => ({ ...s, diskSize: s.diskSize ?? imageSize })))
  const last = snapshots[snapshots.length - 1]
  const lastLen = ENTRY_HEADER + 24 + last.extraUnknown.length + Buffer.byteLength(last.id) + Buffer.byteLength(last.name)
  return full.subarray(0, full.length - (((lastLen + 7) & ~7) - lastLen))
}

/** Write `snapshots` as the image's table; the old table's clusters are released through `refs`. */
export async function replaceSnapshotTable (img: Qcow2Image, w: Qcow2Writer, refs: TreeRefcounts, snapshots: Qcow2Snapshot[]): Promise<void> {
  if (snapshots.length > MAX_SNAPSHOTS) throw new BlockError('Too many snapshots', 'EFBIG')
  const store = img.store
  const cs = img.geo.clusterSize
  const table = encodeTable(snapshots, img.size)
  const oldOffset = img.header.snapshotsOffset
  const oldSize = img.header.nbSnapshots > 0 ? await tableSizeOnDisk(img) : 0
  let offset = 0
  if (table.length > 0) {
    offset = await w.alloc.allocate(Math.ceil(table.length / cs))
    w.invalidateMetadata()
    await store.write(table, offset)
  }
  await w.refs.writeDirty()
  await store.flush()
  await writeHeaderSnapshots(store, img.header, snapshots.length, offset)
  img.shared.snapshots = snapshots
  w.invalidateMetadata()
  if (oldSize > 0 && oldOffset > 0) await refs.release(oldOffset, oldSize)
}
