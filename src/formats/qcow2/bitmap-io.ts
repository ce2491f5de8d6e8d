// Reading a persistent bitmap's contents from a qcow2 image: its bitmap
// table (one entry per cluster of bitmap data: a data cluster, or all
// zeros, or all ones) and the data clusters. Used when a read-write open
// loads the bitmaps and when convert --bitmaps copies them.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import { DirtyBitmap } from '../../block/dirty-bitmap.js'
import { decodeBitmapTableEntry, type BitmapDirEntry } from './bitmaps.js'
import { readTable } from './table-io.js'

/** the most bitmap data read or written in one request */
export const RUN_BYTES = 4 << 20

export interface BitmapContents {
  bitmap: DirtyBitmap
  /** host offsets of the data clusters the table points to */
  dataClusters: number[]
}

/** The table's entries as decoded; throws on an invalid one (qemu refuses to load such a bitmap). */
export async function readBitmapTable (store: ByteStore, e: BitmapDirEntry, clusterSize: number): Promise<Array<{ offset: number, allOnes: boolean }>> {
  const raw = Buffer.alloc(e.tableSize * 8)
  await readTable(store, raw, BigInt(e.tableOffset))
  const out: Array<{ offset: number, allOnes: boolean }> = []
  for (let i = 0; i < e.tableSize; i++) {
    const entry = decodeBitmapTableEntry(raw.readUInt32BE(i * 8), raw.readUInt32BE(i * 8 + 4), clusterSize)
    if (!entry) throw new BlockError(`Could not read bitmap_table table from image for bitmap '${e.name}': Invalid argument`, 'EINVAL')
    out.push(entry)
  }
  return out
}

/** Read the whole bitmap `e` of a disk of `diskSize` bytes. */
export async function readBitmapContents (store: ByteStore, e: BitmapDirEntry, diskSize: number, clusterSize: number): Promise<BitmapContents> {
  const bitmap = new DirtyBitmap(diskSize, 2 ** e.granularityBits, clusterSize)
  const table = await readBitmapTable(store, e, clusterSize)
  const dataClusters: number[] = []
  // read runs of contiguous data clusters in one request each
  let i = 0
  while (i < table.length) {
    const t = table[i]
    if (t.offset === 0) {
      if (t.allOnes) bitmap.loadChunk(i, 'ones')
      i++
      continue
    }
    let j = i + 1
    while (j < table.length && (j - i + 1) * clusterSize <= RUN_BYTES && table[j].offset === t.offset + (j - i) * clusterSize) j++
    const buf = Buffer.alloc((j - i) * clusterSize)
    await readTable(store, buf, BigInt(t.offset))
    for (let k = i; k < j; k++) {
      bitmap.loadChunk(k, buf.subarray((k - i) * clusterSize, (k - i + 1) * clusterSize))
      dataClusters.push(table[k].offset)
    }
    i = j
  }
  return { bitmap, dataClusters }
}
