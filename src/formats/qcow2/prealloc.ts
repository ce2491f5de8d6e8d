// Detecting metadata preallocation the way qemu does: an image whose
// refcounts say many more clusters are in use than the image file really
// occupies on disk was preallocated (preallocation=metadata) or has holes
// punched under its data. Only for such images does qemu's block status ask
// the host file whether a data cluster is a hole (and then reports it as
// zero), so map and convert see the same extents as with qemu.
import type { ByteStore } from '../../io/byte-store.js'
import type { Qcow2Header } from './header.js'
import { getRefcount, refcountBlockEntries } from './refcount.js'

/** bits 9..63 of a refcount table entry */
function reftableEntry (table: Buffer, i: number): number {
  const hi = table.readUInt32BE(i * 8)
  const lo = table.readUInt32BE(i * 8 + 4) & 0xfffffe00
  return hi * 0x100000000 + (lo >>> 0)
}

/**
 * True when at least max(real * 10/9, real + 2) clusters of the image file
 * have a non-zero refcount, where `real` is the number of clusters the file
 * occupies on disk (st_blocks). Stops counting at the threshold, so the cost
 * is bounded by the file's real size.
 */
export async function detectMetadataPreallocation (store: ByteStore, h: Qcow2Header): Promise<boolean> {
  const clusterSize = 2 ** h.clusterBits
  const fileLength = await store.size()
  const realClusters = Math.floor(await store.allocatedSize() / clusterSize)
  const threshold = Math.max(Math.floor(realClusters * 10 / 9), realClusters + 2)
  const endCluster = Math.ceil(fileLength / clusterSize)
  if (endCluster < threshold) return false
  const table = Buffer.alloc(h.refcountTableClusters * clusterSize)
  await store.read(table, h.refcountTableOffset)
  const perBlock = refcountBlockEntries(h.clusterBits, h.refcountOrder)
  const block = Buffer.alloc(clusterSize)
  let count = 0
  for (let first = 0; first < endCluster && count < threshold; first += perBlock) {
    const idx = first / perBlock
    if (idx * 8 + 8 > table.length) break
    const blockOffset = reftableEntry(table, idx)
    if (blockOffset === 0) continue
    // read once, not cached: this runs once per image, and the write path keeps its own refcount blocks
    await store.read(block, blockOffset)
    const n = Math.min(perBlock, endCluster - first)
    for (let i = 0; i < n && count < threshold; i++) {
      if (getRefcount(block, i, h.refcountOrder) !== 0) count++
    }
  }
  return count >= threshold
}
