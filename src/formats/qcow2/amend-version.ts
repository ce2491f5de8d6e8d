// Changing a qcow2 image's version (amend -o compat=...), as qemu 7.2 does:
//
// Upgrade to 1.1 (version 3): snapshots without the version 3 extra data
// (disk size, large VM state size) get a rewritten snapshot table, then the
// header is rewritten as version 3 with every feature bit clear.
//
// Downgrade to 0.10 (version 2): refused when the image uses what version 2
// cannot express (refcount widths other than 16, an external data file,
// incompatible features, zstd-compressed clusters). Zero clusters are
// expanded, in every L2 table of the image and its snapshots (tables shared
// with snapshots are changed in place: every user wants the same data): a
// preallocated zero cluster with one reference is zeroed and kept, one
// shared with a snapshot is replaced by a fresh zeroed cluster; a zero
// cluster without one becomes unallocated, or (with a backing file, which
// would show through) gets a fresh zeroed cluster. Then the header is rewritten as version 2. (qemu keeps a
// bitmaps extension in the version 2 header; so does qimg.)
import { BlockError } from '../../cli/errors.js'
import {
  COMPRESSION_ZLIB, COMPRESSION_ZSTD, INCOMPAT_COMPRESSION, INCOMPAT_DATA_FILE, INCOMPAT_DIRTY, writeU64,
} from './header.js'
import { rewriteHeader } from './header-write.js'
import { entryOffset, OFLAG_COMPRESSED_HI, OFLAG_COPIED_HI, OFLAG_ZERO_LO } from './layout.js'
import { encodeSnapshots } from './snapshots.js'
import { readTable } from './table-io.js'
import type { StatusCallback } from './amend-progress.js'
import type { Qcow2Image } from './driver.js'

function fail (message: string, errno = 'EINVAL'): never {
  throw new BlockError(message, errno)
}

export async function upgradeQcow2 (img: Qcow2Image, status: StatusCallback): Promise<void> {
  const w = img.shared.writer!
  const h = img.header
  const cs = img.geo.clusterSize
  status(0, 2)
  await w.flush()
  let oldTable: { offset: number, clusters: number } | undefined
  const snaps = img.shared.snapshots
  if (snaps.some(s => s.diskSize === undefined)) {
    // version 3 snapshots record the disk size: the current one, for those that do not
    for (const s of snaps) s.diskSize ??= img.size
    const table = encodeSnapshots(snaps)
    const clusters = Math.ceil(table.length / cs)
    await w.mutex.run(async () => {
      const at = await w.alloc.allocate(clusters)
      const padded = Buffer.alloc(clusters * cs)
      table.copy(padded)
      await img.store.write(padded, at)
      await w.refs.writeDirty()
      await img.store.flush()
      oldTable = { offset: h.snapshotsOffset, clusters: Math.ceil(await snapshotTableBytes(img) / cs) }
      h.snapshotsOffset = at
      w.invalidateMetadata()
    })
  }
  status(1, 2)
  h.version = 3
  h.incompatible = 0n
  h.compatible = 0n
  h.autoclear = 0n
  h.compressionType = COMPRESSION_ZLIB
  await rewriteHeader(img.store, h, cs)
  if (oldTable) {
    const old = oldTable
    await w.mutex.run(async () => {
      for (let i = 0; i < old.clusters; i++) w.alloc.decref(old.offset / cs + i)
      await w.flushMetadata()
    })
  }
  status(2, 2)
}

/** Bytes of the snapshot table as it is on disk now (entries are 8-byte aligned). */
async function snapshotTableBytes (img: Qcow2Image): Promise<number> {
  const h = img.header
  let pos = 0
  const head = Buffer.alloc(40)
  for (let i = 0; i < h.nbSnapshots; i++) {
    await readTable(img.store, head, BigInt(h.snapshotsOffset + pos))
    const len = 40 + head.readUInt32BE(36) + head.readUInt16BE(12) + head.readUInt16BE(14)
    pos += (len + 7) & ~7
  }
  return pos
}

export async function downgradeQcow2 (img: Qcow2Image, status: StatusCallback): Promise<void> {
  const h = img.header
  if (h.refcountOrder !== 4) fail('compat=0.10 requires refcount_bits=16', 'ENOTSUP')
  if (h.incompatible & INCOMPAT_DATA_FILE) fail('Cannot downgrade an image with a data file', 'ENOTSUP')
  const others = h.incompatible & ~(INCOMPAT_DIRTY | INCOMPAT_COMPRESSION)
  if (others !== 0n) fail(`Cannot downgrade an image with incompatible features 0x${others.toString(16)} set`, 'ENOTSUP')
  const l1Tables = await allL1Tables(img)
  if (h.compressionType === COMPRESSION_ZSTD && await hasCompressedClusters(img, l1Tables)) {
    fail('Cannot downgrade an image with zstd compression type and existing compressed clusters', 'ENOTSUP')
  }
  await expandZeroClusters(img, l1Tables, status)
  // the refcounts are exact and the dirty bit clear before version 2 loses both
  await img.shared.writer!.flush()
  h.version = 2
  h.incompatible = 0n
  h.compatible = 0n
  h.autoclear = 0n
  h.compressionType = COMPRESSION_ZLIB
  await rewriteHeader(img.store, h, img.geo.clusterSize)
}

/** The active L1 table and every snapshot's. */
async function allL1Tables (img: Qcow2Image): Promise<Buffer[]> {
  const tables = [img.l1]
  for (const s of img.shared.snapshots) {
    if (!Number.isSafeInteger(s.l1TableOffset) || s.l1TableOffset % img.geo.clusterSize !== 0) fail('Snapshot L1 table offset invalid')
    const l1 = Buffer.alloc(s.l1Size * 8)
    await readTable(img.store, l1, BigInt(s.l1TableOffset))
    tables.push(l1)
  }
  return tables
}

/** L2 table offsets of an L1 table, by index (0: none). */
function l2Offsets (l1: Buffer): number[] {
  const out: number[] = []
  for (let i = 0; i < l1.length / 8; i++) out.push(entryOffset(l1.readUInt32BE(i * 8), l1.readUInt32BE(i * 8 + 4)))
  return out
}

async function readL2 (img: Qcow2Image, off: number): Promise<Buffer> {
  const cs = img.geo.clusterSize
  if (off % cs !== 0) throw img.corruption(`L2 table offset 0x${off.toString(16)} unaligned`)
  const buf = Buffer.alloc(cs)
  await readTable(img.store, buf, BigInt(off))
  return buf
}

async function hasCompressedClusters (img: Qcow2Image, l1Tables: Buffer[]): Promise<boolean> {
  await img.shared.writer!.flush()
  const seen = new Set<number>()
  for (const l1 of l1Tables) {
    for (const off of l2Offsets(l1)) {
      if (off === 0 || seen.has(off)) continue
      seen.add(off)
      const l2 = await readL2(img, off)
      for (let e = 0; e < l2.length; e += 8) if (l2.readUInt32BE(e) & OFLAG_COMPRESSED_HI) return true
    }
  }
  return false
}

/** Rewrite every zero cluster as version 2 can express it; progress counts L1 entries. */
async function expandZeroClusters (img: Qcow2Image, l1Tables: Buffer[], status: StatusCallback): Promise<void> {
  const w = img.shared.writer!
  await w.flush()
  const total = l1Tables.reduce((n, t) => n + t.length / 8, 0)
  const seen = new Set<number>()
  let done = 0
  for (const l1 of l1Tables) {
    for (const off of l2Offsets(l1)) {
      if (off !== 0 && !seen.has(off)) {
        seen.add(off)
        await expandTable(img, off)
      }
      status(++done, total)
    }
  }
}

async function expandTable (img: Qcow2Image, off: number): Promise<void> {
  const w = img.shared.writer!
  const cs = img.geo.clusterSize
  const l2 = await readL2(img, off)
  const hasBacking = img.backing !== null
  let changed = false
  await w.mutex.run(async () => {
    const zeroed: number[] = []
    for (let e = 0; e < l2.length; e += 8) {
      const hi = l2.readUInt32BE(e)
      const lo = l2.readUInt32BE(e + 4)
      if ((hi & OFLAG_COMPRESSED_HI) || !(lo & OFLAG_ZERO_LO)) continue
      changed = true
      const host = entryOffset(hi, lo)
      let target = 0
      if (host !== 0 && await w.refs.get(host / cs) === 1) {
        target = host
      } else if (host !== 0) {
        // shared with a snapshot: the zeros go to a cluster of its own
        w.alloc.decref(host / cs)
        target = await w.alloc.allocate(1)
      } else if (hasBacking) {
        target = await w.alloc.allocate(1)
      }
      if (target !== 0) zeroed.push(target)
      writeU64(l2, e, target)
      if (target !== 0) l2.writeUInt32BE((l2.readUInt32BE(e) | OFLAG_COPIED_HI) >>> 0, e)
    }
    if (!changed) return
    w.invalidateMetadata()
    // zeroed data and its refcounts reach the disk before the table that points to them
    for (const c of zeroed) await zeroCluster(img, c)
    await w.refs.writeDirty()
    await img.store.flush()
    await img.store.write(l2, off)
    await img.store.flush()
    img.shared.metadataCache.delete(img.shared.owner, off)
    await w.flushMetadata()
  })
}

async function zeroCluster (img: Qcow2Image, offset: number): Promise<void> {
  const cs = img.geo.clusterSize
  if (img.store.zeroRange) await img.store.zeroRange(offset, cs)
  else await img.store.write(Buffer.alloc(cs), offset)
}
