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
import { readTable } from './table-io.js'

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
  const names = new Set<string>()
  for (const e of entries) {
    // qemu loads every bitmap not marked in use: its table must be sound
    if (e.flags & FLAG_IN_USE) continue
    const table = Buffer.alloc(e.tableSize * 8)
    try {
      await readTable(store, table, BigInt(e.tableOffset))
    } catch (err) {
      if (err instanceof BlockError) fail(`Could not read bitmap_table table from image for bitmap '${e.name}': ${err.message}`, err.errno)
      throw err
    }
    for (let i = 0; i < e.tableSize; i++) {
      if (!decodeBitmapTableEntry(table.readUInt32BE(i * 8), table.readUInt32BE(i * 8 + 4), clusterSize)) {
        fail(`Could not read bitmap_table table from image for bitmap '${e.name}': Invalid argument`)
      }
    }
    if (e.tableSize !== bitmapTableSize(diskSize, e.granularityBits, clusterSize)) {
      fail(`Could not read bitmap '${e.name}' from image: Invalid argument`)
    }
    if (names.has(e.name)) fail(`Bitmap already exists: ${e.name}`)
    names.add(e.name)
  }
  return entries.map(e => ({ ...e, granularity: 2 ** e.granularityBits, flagNames: flagNames(e.flags & (FLAG_IN_USE | FLAG_AUTO)) }))
}
