// Loading the persistent bitmaps of a qcow2 image at open time, with the
// checks qemu makes then (so a broken directory or bitmap table is refused
// with qemu-img's message). Bitmap data itself is not read: qimg only lists
// bitmaps; the bitmap command builds on the decoded structures.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import type { Qcow2Header } from './header.js'
import {
  BitmapError, FLAG_AUTO, FLAG_IN_USE, bitmapTableSize, decodeBitmapDirectory, decodeBitmapTableEntry,
  decodeBitmapsExtension, flagNames, type BitmapDirEntry,
} from './bitmaps.js'
import { MAX_REQUEST_END, readTable } from './table-io.js'

export interface LoadedBitmap extends BitmapDirEntry {
  granularity: number
  /** 'in-use', 'auto' as info lists them */
  flagNames: string[]
}

function fail (message: string, errno = 'EINVAL'): never {
  throw new BlockError(message, errno)
}

/** Read the directory named by the (validated) bitmaps extension and check every bitmap qemu would load. */
export async function loadBitmapDirectory (store: ByteStore, extData: Buffer, h: Qcow2Header, diskSize: number): Promise<LoadedBitmap[]> {
  const clusterSize = 2 ** h.clusterBits
  const ext = decodeBitmapsExtension(extData)
  if (ext.directorySize === 0n) fail('Requested bitmap directory size is zero')
  const dir = Buffer.alloc(Number(ext.directorySize))
  await readTable(store, dir, ext.directoryOffset)
  let entries: BitmapDirEntry[]
  try {
    entries = decodeBitmapDirectory(dir, ext.nbBitmaps, clusterSize)
  } catch (e) {
    if (e instanceof BitmapError) fail(e.message)
    throw e
  }
  // qemu loads every bitmap not marked in use: its table must be sound
  const loaded = entries.filter(e => !(e.flags & FLAG_IN_USE))
  const invalid = await invalidTableEntries(store, loaded, clusterSize)
  const names = new Set<string>()
  for (const e of loaded) {
    const what = `Could not read bitmap_table table from image for bitmap '${e.name}'`
    const bytes = e.tableSize * 8
    if (e.tableOffset + bytes > Number(MAX_REQUEST_END)) fail(`${what}: Input/output error`, 'EIO')
    if (invalid.firstFrom(e.tableOffset) < e.tableOffset + bytes) fail(`${what}: Invalid argument`)
    if (e.tableSize !== bitmapTableSize(diskSize, e.granularityBits, clusterSize)) {
      fail(`Could not read bitmap '${e.name}' from image: Invalid argument`)
    }
    if (names.has(e.name)) fail(`Bitmap already exists: ${e.name}`)
    names.add(e.name)
  }
  return entries.map(e => ({ ...e, granularity: 2 ** e.granularityBits, flagNames: flagNames(e.flags & (FLAG_IN_USE | FLAG_AUTO)) }))
}

/**
 * File positions of invalid bitmap table entries within the tables of
 * `bitmaps`, found by one pass over the union of the tables' bytes inside
 * the file (past its end entries read as zeros, which are valid). Hostile
 * directories can name thousands of overlapping tables; each byte of the
 * file is still read at most once.
 */
async function invalidTableEntries (store: ByteStore, bitmaps: BitmapDirEntry[], clusterSize: number): Promise<{ firstFrom (pos: number): number }> {
  const fileSize = await store.size()
  const ranges = bitmaps
    .filter(b => b.tableOffset < fileSize)
    .map(b => [b.tableOffset, Math.min(b.tableOffset + b.tableSize * 8, fileSize)] as [number, number])
    .sort((a, b) => a[0] - b[0])
  const found: number[] = []
  let scanned = 0
  const CHUNK = 1 << 20
  for (const [start, end] of ranges) {
    // tables are cluster aligned, so entries sit at 8-byte positions whatever the overlap
    for (let pos = Math.max(start, scanned); pos < end; pos += CHUNK) {
      const buf = Buffer.alloc(Math.min(CHUNK, end - pos))
      await store.read(buf, pos)
      for (let i = 0; i + 8 <= buf.length; i += 8) {
        if (!decodeBitmapTableEntry(buf.readUInt32BE(i), buf.readUInt32BE(i + 4), clusterSize)) found.push(pos + i)
      }
    }
    scanned = Math.max(scanned, end)
  }
  return {
    firstFrom (pos: number): number {
      let lo = 0
      let hi = found.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (found[mid] < pos) lo = mid + 1; else hi = mid
      }
      return lo < found.length ? found[lo] : Infinity
    },
  }
}
