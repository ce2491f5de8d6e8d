// Resizing a qcow2 image: growing (a bigger L1 table when needed, the new
// area zeroed where a longer backing file would show through, optional
// preallocation) and shrinking (clusters past the end freed, the file cut
// after the last used cluster), with qemu-img's messages.
import { BlockError } from '../../cli/errors.js'
import type { Preallocation } from '../../block/types.js'
import type { ByteStore } from '../../io/byte-store.js'
import { writeHeaderL1, writeHeaderSize } from './header-update.js'
import { MAX_L1_BYTES } from './open.js'
import { EMPTY_ENTRY, hostOf, isCompressed, NO_HOST, plainEntry, readEntry, writeEntry, ALL_SUBCLUSTERS } from './l2-entry.js'
import type { Qcow2Image } from './driver.js'
import type { Qcow2Writer } from './write.js'

export async function resizeQcow2 (img: Qcow2Image, w: Qcow2Writer, size: number, prealloc: Preallocation): Promise<void> {
  if (size % 512 !== 0) throw new BlockError('The new size must be a multiple of 512', 'EINVAL')
  const bitmaps = img.shared.bitmapStore
  const broken = bitmaps?.firstInconsistent()
  if (broken !== undefined) {
    throw new BlockError(`Bitmap '${broken}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk`, 'EINVAL')
  }
  const old = img.size
  if (size === old) return
  if (size < old) return shrink(img, w, size)
  const backing = img.backing
  // where a longer backing file would show through, the whole new area reads as zeros (as qemu zeroes it)
  const zeroUpTo = backing && backing.size > old ? size : 0
  if (zeroUpTo > old && img.header.version < 3) {
    // version 2 cannot mark the new area as zeros
    throw new BlockError('Failed to zero out new clusters: Operation not supported', 'ENOTSUP')
  }
  const entries = img.geo.l1EntriesFor(size)
  if (entries > img.header.l1Size) await growL1(img, w, entries)
  const data = img.shared.dataStore
  if (data !== img.store && (await data.size()) < size) await data.truncate(size)
  await writeHeaderSize(img.store, img.header, size)
  img.size = size
  // persistent bitmaps follow the new size (they are stored on close)
  img.shared.bitmapStore?.resize(size)
  if (zeroUpTo > old) await w.writeZeroes(old, zeroUpTo - old, { unmap: false })
  if (prealloc !== 'off') await preallocate(img, w, old, size, prealloc)
}

/** Move the L1 table to a bigger place (exactly `entries` long, as qemu-img resize does). */
export async function growL1 (img: Qcow2Image, w: Qcow2Writer, entries: number): Promise<void> {
  if (entries * 8 > MAX_L1_BYTES) throw new BlockError('Failed to grow the L1 table: File too large', 'EFBIG')
  const cs = img.geo.clusterSize
  await w.mutex.run(async () => {
    await w.flushMetadata()
    const clusters = Math.ceil(entries * 8 / cs)
    const at = await w.alloc.allocate(clusters)
    w.invalidateMetadata()
    const table = Buffer.alloc(entries * 8)
    img.l1.copy(table)
    await w.refs.writeDirty()
    await img.store.flush()
    const padded = Buffer.alloc(clusters * cs)
    table.copy(padded)
    await img.store.write(padded, at)
    await img.store.flush()
    const oldOffset = img.header.l1TableOffset
    const oldClusters = Math.ceil(img.header.l1Size * 8 / cs)
    await writeHeaderL1(img.store, img.header, at, entries)
    img.l1 = table
    if (oldOffset !== 0) for (let i = 0; i < oldClusters; i++) w.alloc.decref(oldOffset / cs + i)
    await w.flushMetadata()
  })
}

/**
 * Allocate the clusters of [from, to) that have none: 'metadata' leaves the
 * file sparse (the new clusters read as zeros), 'falloc' reserves the space,
 * 'full' writes zeros.
 */
async function preallocate (img: Qcow2Image, w: Qcow2Writer, from: number, to: number, mode: Preallocation): Promise<void> {
  const g = img.geo
  const cs = g.clusterSize
  const external = img.shared.dataStore !== img.store
  const store = img.shared.dataStore
  // the cluster holding the old end keeps its state (it may read from the backing file)
  let pos = Math.ceil(from / cs) * cs
  while (pos < to) {
    const stop = Math.min(to, (g.l1Index(pos) + 1) * g.l2Coverage)
    await w.mutex.run(async () => {
      const table = await w.tableForWrite(g.l1Index(pos))
      const gcs: number[] = []
      for (let gc = pos / cs; gc < Math.ceil(stop / cs); gc++) {
        const e = readEntry(table, g.l2Index(gc * cs), g)
        if (!isCompressed(e) && hostOf(e, external) === NO_HOST) gcs.push(gc)
      }
      if (gcs.length === 0) return
      // host offsets: one new run in the image file, or the guest offsets in an external data file
      const base = external ? 0 : await w.alloc.allocate(gcs.length)
      w.invalidateMetadata()
      const hostOfGc = (k: number): number => external ? gcs[k] * cs : base + k * cs
      for (let k = 0; k < gcs.length;) {
        let n = 1
        while (k + n < gcs.length && hostOfGc(k + n) === hostOfGc(k) + n * cs) n++
        await fill(store, hostOfGc(k), n * cs, mode)
        k += n
      }
      gcs.forEach((gc, k) => {
        writeEntry(table, g.l2Index(gc * cs), g, plainEntry(hostOfGc(k), g.extendedL2 ? { bmHi: 0, bmLo: ALL_SUBCLUSTERS } : undefined))
      })
    })
    pos = stop
  }
  await w.flush()
}

async function fill (store: ByteStore, at: number, bytes: number, mode: Preallocation): Promise<void> {
  if (mode === 'full') {
    const zero = Buffer.alloc(Math.min(bytes, 1 << 20))
    for (let p = 0; p < bytes; p += zero.length) await store.write(zero.subarray(0, Math.min(zero.length, bytes - p)), at + p)
  } else if (mode === 'falloc') {
    await store.allocate(at, bytes)
  } else if (await store.size() < at + bytes) {
    await store.truncate(at + bytes)
  }
}

/** Drop everything past `size` (the space punched out, as qemu discards it), then cut the file after the last cluster still in use. */
async function shrink (img: Qcow2Image, w: Qcow2Writer, size: number): Promise<void> {
  const g = img.geo
  const cs = g.clusterSize
  const firstGone = Math.ceil(size / cs) * cs
  // what is dropped goes back to the file system, as qemu discards it
  const punch = w.punchGroup()
  await w.mutex.run(async () => {
    const l1Entries = img.l1.length / 8
    for (let l1i = g.l1Index(firstGone); l1i < l1Entries; l1i++) {
      const tableStart = l1i * g.l2Coverage
      const current = await w.currentTable(l1i)
      if (!current) continue
      if (tableStart >= firstGone) {
        // the whole table goes: its clusters lose the active image's reference, then the table
        for (let i = 0; i < g.l2Entries; i++) w.dropReference(readEntry(current, i, g), -1, punch)
        const off = img.l2OffsetAt(l1i)
        w.release(off / cs, punch)
        w.forgetTable(off)
        w.setL1(l1i, 0)
        continue
      }
      let table: Buffer | null = null
      for (let i = g.l2Index(firstGone); i < g.l2Entries; i++) {
        const e = readEntry(table ?? current, i, g)
        if (e.hi === 0 && e.lo === 0 && e.bmHi === 0 && e.bmLo === 0) continue
        table ??= await w.tableForWrite(l1i)
        w.dropReference(e, -1, punch)
        writeEntry(table, i, g, EMPTY_ENTRY)
      }
    }
    w.invalidateMetadata()
    await w.flushMetadata()
  })
  await writeHeaderSize(img.store, img.header, size)
  img.size = size
  // persistent bitmaps follow the new size (they are stored on close)
  img.shared.bitmapStore?.resize(size)
  await w.flush()
  const end = await w.alloc.usedEnd()
  if (end < await img.store.size()) await img.store.truncate(end)
}
