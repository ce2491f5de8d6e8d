// Internal snapshots of a writable qcow2 image: create, revert to (apply) and
// delete, in the order that keeps a crash harmless (refcount increments on
// disk before anything relies on them, decrements only after nothing on disk
// uses the clusters any more).
import { BlockError } from '../../cli/errors.js'
import type { SnapshotSpec } from '../../block/types.js'
import { INCOMPAT_DATA_FILE } from './header.js'
import { MAX_L1_BYTES } from './open.js'
import { growL1 } from './resize.js'
import { TreeRefcounts } from './snapshot-refs.js'
import { MAX_SNAPSHOTS, replaceSnapshotTable } from './snapshot-table.js'
import type { Qcow2Snapshot } from './snapshots.js'
import type { Qcow2Image } from './driver.js'
import type { Qcow2Writer } from './write.js'

export interface SnapshotDate { dateSec: number, dateNsec: number, vmClockNsec?: number }

/**
 * qemu keeps snapshot names in a 256-byte C string: longer names are cut to
 * 255 bytes (qemu may cut a multi-byte character in two; qimg cuts before it)
 */
const MAX_NAME_BYTES = 255

function refuseDataFile (img: Qcow2Image): void {
  if (img.header.incompatible & INCOMPAT_DATA_FILE) throw new BlockError('Operation not supported', 'ENOTSUP')
}

/** The next id, as qemu picks it: one more than the largest numeric id. */
function nextId (list: Qcow2Snapshot[]): string {
  let max = 0
  for (const s of list) {
    const m = /^\s*\+?(\d+)/.exec(s.id)
    if (m) max = Math.max(max, Number(m[1]))
  }
  return String(max + 1)
}

function cutName (name: string): string {
  let out = ''
  let bytes = 0
  for (const ch of name) {
    bytes += Buffer.byteLength(ch)
    if (bytes > MAX_NAME_BYTES) break
    out += ch
  }
  return out
}

/** Find a snapshot by id and/or name (both must match when both are given). */
export function findSnapshot (list: Qcow2Snapshot[], spec: SnapshotSpec): Qcow2Snapshot | undefined {
  return list.find(s => (spec.id === undefined || s.id === spec.id) && (spec.name === undefined || s.name === spec.name))
}

async function readL1 (img: Qcow2Image, snap: Qcow2Snapshot): Promise<Buffer> {
  const cs = img.geo.clusterSize
  if (snap.l1Size * 8 > MAX_L1_BYTES) throw new BlockError('Snapshot L1 table too large', 'EFBIG')
  if (snap.l1Size > 0 && (!Number.isFinite(snap.l1TableOffset) || snap.l1TableOffset % cs !== 0 || snap.l1TableOffset === 0)) {
    throw new BlockError('Snapshot L1 table offset invalid', 'EINVAL')
  }
  const l1 = Buffer.alloc(snap.l1Size * 8)
  if (l1.length > 0) await img.store.read(l1, snap.l1TableOffset)
  return l1
}

/** Take a snapshot of the active disk state. */
export async function createSnapshot (img: Qcow2Image, w: Qcow2Writer, name: string, date: SnapshotDate): Promise<void> {
  refuseDataFile(img)
  await w.mutex.run(async () => {
    await w.flushMetadata()
    const list = img.shared.snapshots
    if (list.length >= MAX_SNAPSHOTS) throw new BlockError('Too many snapshots', 'EFBIG')
    const cs = img.geo.clusterSize
    const refs = new TreeRefcounts(img, w)
    // the snapshot's L1 table: a copy of the active one as it is now
    const l1Size = img.l1.length / 8
    const copy = Buffer.from(img.l1)
    let l1Offset = 0
    if (copy.length > 0) {
      l1Offset = await w.alloc.allocate(Math.ceil(copy.length / cs))
      w.invalidateMetadata()
      await img.store.write(copy, l1Offset)
    }
    // one more reference to everything the active L1 reaches
    const saved = Buffer.from(img.l1)
    try {
      for (const i of await refs.walk(img.l1, 1)) w.markL1Dirty(i)
    } catch (e) {
      saved.copy(img.l1)
      w.tables.clear()
      await refs.rollback()
      if (l1Offset !== 0) await refs.release(l1Offset, copy.length)
      await refs.flush()
      await refs.punchFreed()
      throw e
    }
    await refs.flush()
    const snap: Qcow2Snapshot = {
      l1TableOffset: l1Offset,
      l1Size,
      id: nextId(list),
      name: cutName(name),
      dateSec: date.dateSec,
      dateNsec: date.dateNsec,
      vmClockNsec: date.vmClockNsec ?? 0,
      vmStateSize: 0,
      diskSize: img.size,
      icount: 0,
      extraUnknown: Buffer.alloc(0),
    }
    await replaceSnapshotTable(img, w, refs, [...list, snap])
    await refs.flush()
    await refs.punchFreed()
  })
}

/** Make the active disk state the snapshot's again (its disk size included). */
export async function applySnapshot (img: Qcow2Image, w: Qcow2Writer, spec: SnapshotSpec): Promise<void> {
  refuseDataFile(img)
  const snap = findSnapshot(img.shared.snapshots, spec)
  if (!snap) throw new BlockError('Can\'t find snapshot', 'ENOENT')
  const snapL1 = await readL1(img, snap)
  const size = snap.diskSize ?? img.size
  const shrinks = size < img.size
  if (size !== img.size) await img.resize(size, { shrink: true })
  if (snap.l1Size > img.header.l1Size) await growL1(img, w, snap.l1Size)
  await w.mutex.run(async () => {
    await w.flushMetadata()
    const refs = new TreeRefcounts(img, w)
    // first the snapshot's clusters gain the active disk's reference...
    const snapChanged = await refs.walk(snapL1, 1)
    await refs.flush()
    if (snapChanged.length > 0) {
      await img.store.write(snapL1, snap.l1TableOffset)
      await img.store.flush()
    }
    // ...then the active L1 table becomes the snapshot's, in place...
    const next = Buffer.alloc(img.l1.length)
    snapL1.copy(next)
    await img.store.write(next, img.header.l1TableOffset)
    await img.store.flush()
    const old = img.l1
    img.l1 = next
    // ...and what the old active L1 reached loses its reference (qemu
    // leaves the flags in those tables alone when it had to shrink the image)
    await refs.walk(old, -1, !shrinks)
    for (const i of await refs.walk(img.l1, 0)) w.markL1Dirty(i)
    w.invalidateMetadata()
    await refs.flush()
    await refs.punchFreed()
  })
}

/** Delete a snapshot; the clusters only it used are freed. */
export async function deleteSnapshot (img: Qcow2Image, w: Qcow2Writer, spec: SnapshotSpec): Promise<void> {
  await w.mutex.run(async () => {
    const list = img.shared.snapshots
    const snap = findSnapshot(list, spec)
    if (!snap) throw new BlockError('Can\'t find the snapshot', 'ENOENT')
    const snapL1 = await readL1(img, snap)
    await w.flushMetadata()
    const refs = new TreeRefcounts(img, w)
    // the table no longer lists it (the commit point), then its references go
    await replaceSnapshotTable(img, w, refs, list.filter(s => s !== snap))
    await refs.walk(snapL1, -1)
    await refs.release(snap.l1TableOffset, snapL1.length)
    for (const i of await refs.walk(img.l1, 0)) w.markL1Dirty(i)
    await refs.flush()
    await refs.punchFreed()
  })
}
