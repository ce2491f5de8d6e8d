// Persistent dirty bitmaps (docs/interop/qcow2.txt "Bitmaps", bitmaps.rst):
// the bitmaps header extension, the bitmap directory and bitmap tables.
// Pure decode/encode functions plus qemu's validity rules, with the messages
// qemu-img prints when an image breaks them. The snapshot/bitmap commands
// build on the same structures.
import { readU64, writeU64 } from './header.js'

export const EXT_BITMAPS_LENGTH = 24
/** qemu's limits */
export const MAX_BITMAPS = 65535
export const MAX_NAME_SIZE = 1023
export const MAX_TABLE_SIZE = 0x8000000
export const MAX_PHYS_SIZE = 0x20000000
export const MIN_GRANULARITY_BITS = 9
export const MAX_GRANULARITY_BITS = 31
/** the largest directory qemu accepts: 1 KiB per bitmap */
export const MAX_DIRECTORY_SIZE = MAX_BITMAPS * 1024

export const FLAG_IN_USE = 1 << 0
export const FLAG_AUTO = 1 << 1
export const FLAG_EXTRA_DATA_COMPATIBLE = 1 << 2
export const TYPE_DIRTY_TRACKING = 1

/** A bitmap directory entry without its fixed 24-byte header */
const ENTRY_HEADER = 24

export class BitmapError extends Error {}

export interface BitmapsExtension {
  nbBitmaps: number
  /** must be zero */
  reserved: number
  /** bytes; bigints because hostile values need exact checks and messages */
  directorySize: bigint
  directoryOffset: bigint
}

export function decodeBitmapsExtension (data: Buffer): BitmapsExtension {
  if (data.length !== EXT_BITMAPS_LENGTH) throw new BitmapError('bitmaps_ext: Invalid extension length')
  return {
    nbBitmaps: data.readUInt32BE(0),
    reserved: data.readUInt32BE(4),
    directorySize: data.readBigUInt64BE(8),
    directoryOffset: data.readBigUInt64BE(16),
  }
}

export function encodeBitmapsExtension (ext: BitmapsExtension): Buffer {
  const b = Buffer.alloc(EXT_BITMAPS_LENGTH)
  b.writeUInt32BE(ext.nbBitmaps, 0)
  b.writeUInt32BE(ext.reserved, 4)
  b.writeBigUInt64BE(ext.directorySize, 8)
  b.writeBigUInt64BE(ext.directoryOffset, 16)
  return b
}

/**
 * The checks qemu applies to the extension when the bitmaps autoclear bit
 * is set (the data is consistent). Throws BitmapError with qemu's message.
 */
export function validateBitmapsExtension (ext: BitmapsExtension, clusterSize: number): void {
  if (ext.reserved !== 0) throw new BitmapError('bitmaps_ext: Reserved field is not zero')
  if (ext.nbBitmaps === 0) throw new BitmapError('found bitmaps extension with zero bitmaps')
  if (ext.nbBitmaps > MAX_BITMAPS) {
    throw new BitmapError(`bitmaps_ext: Image has ${ext.nbBitmaps} bitmaps, exceeding the QEMU supported maximum of ${MAX_BITMAPS}`)
  }
  if (ext.directorySize > BigInt(MAX_DIRECTORY_SIZE)) {
    throw new BitmapError(`bitmaps_ext: bitmap directory size (${ext.directorySize}) exceeds the maximum supported size (${MAX_DIRECTORY_SIZE})`)
  }
  if (ext.directoryOffset % BigInt(clusterSize) !== 0n) throw new BitmapError('bitmaps_ext: invalid bitmap directory offset')
}

export interface BitmapDirEntry {
  tableOffset: number
  tableSize: number
  flags: number
  type: number
  granularityBits: number
  name: string
  extraData: Buffer
}

function entrySize (extraLen: number, nameLen: number): number {
  return (ENTRY_HEADER + extraLen + nameLen + 7) & ~7
}

/**
 * Decode the directory (`buf` is exactly directory_size bytes) with qemu's
 * checks, entry by entry: the count, the entry fitting the directory, extra
 * data (unsupported), then the constraints of each bitmap.
 */
export function decodeBitmapDirectory (buf: Buffer, nbBitmaps: number, clusterSize: number): BitmapDirEntry[] {
  const entries: BitmapDirEntry[] = []
  let pos = 0
  while (pos < buf.length) {
    if (entries.length >= nbBitmaps) throw new BitmapError('More bitmaps found than specified in header extension')
    if (pos + ENTRY_HEADER > buf.length) throw new BitmapError('Broken bitmap directory')
    const extraLen = buf.readUInt32BE(pos + 20)
    const nameLen = buf.readUInt16BE(pos + 18)
    const size = entrySize(extraLen, nameLen)
    if (size > buf.length - pos) throw new BitmapError('Broken bitmap directory')
    if (extraLen !== 0) throw new BitmapError('Bitmap extra data is not supported')
    const exactOffset = buf.readBigUInt64BE(pos)
    const e: BitmapDirEntry = {
      // past 2^53 only "past the end of the file" matters, not the exact value
      tableOffset: Number(exactOffset),
      tableSize: buf.readUInt32BE(pos + 8),
      flags: buf.readUInt32BE(pos + 12),
      type: buf[pos + 16],
      granularityBits: buf[pos + 17],
      extraData: Buffer.from(buf.subarray(pos + ENTRY_HEADER, pos + ENTRY_HEADER + extraLen)),
      name: buf.subarray(pos + ENTRY_HEADER + extraLen, pos + ENTRY_HEADER + extraLen + nameLen).toString('utf8'),
    }
    if (!satisfiesConstraints(e, exactOffset, nameLen, clusterSize)) {
      throw new BitmapError(`Bitmap '${e.name}' doesn't satisfy the constraints`)
    }
    entries.push(e)
    pos += size
  }
  if (entries.length < nbBitmaps) throw new BitmapError('Less bitmaps found than specified in header extension')
  return entries
}

/** qemu's per-bitmap rules (observed): known flags and type, sane granularity and table. */
export function satisfiesConstraints (e: BitmapDirEntry, tableOffset: bigint, nameLen: number, clusterSize: number): boolean {
  return (e.flags & ~(FLAG_IN_USE | FLAG_AUTO)) === 0 &&
    e.type === TYPE_DIRTY_TRACKING &&
    e.granularityBits >= MIN_GRANULARITY_BITS && e.granularityBits <= MAX_GRANULARITY_BITS &&
    tableOffset !== 0n && tableOffset % BigInt(clusterSize) === 0n &&
    e.tableSize !== 0 && e.tableSize <= MAX_TABLE_SIZE && e.tableSize * clusterSize <= MAX_PHYS_SIZE &&
    nameLen <= MAX_NAME_SIZE
}

export function encodeBitmapDirectory (entries: BitmapDirEntry[]): Buffer {
  const parts = entries.map(e => {
    const name = Buffer.from(e.name, 'utf8')
    const b = Buffer.alloc(entrySize(e.extraData.length, name.length))
    writeU64(b, 0, e.tableOffset)
    b.writeUInt32BE(e.tableSize, 8)
    b.writeUInt32BE(e.flags, 12)
    b[16] = e.type
    b[17] = e.granularityBits
    b.writeUInt16BE(name.length, 18)
    b.writeUInt32BE(e.extraData.length, 20)
    e.extraData.copy(b, ENTRY_HEADER)
    name.copy(b, ENTRY_HEADER + e.extraData.length)
    return b
  })
  return Buffer.concat(parts)
}

/** Bitmap table entries needed for a disk of `diskSize` bytes at this granularity. */
export function bitmapTableSize (diskSize: number, granularityBits: number, clusterSize: number): number {
  const bits = Math.ceil(diskSize / 2 ** granularityBits)
  return Math.ceil(Math.ceil(bits / 8) / clusterSize)
}

/** Bits 1-8 and 56-63 of a bitmap table entry are reserved. */
const TABLE_RESERVED_HI = 0xff000000
const TABLE_RESERVED_LO = 0x000001fe

/**
 * A bitmap table entry: a data cluster offset, or (offset 0) all zeros or,
 * with bit 0, all ones. Undefined when the entry is invalid.
 */
export function decodeBitmapTableEntry (hi: number, lo: number, clusterSize: number): { offset: number, allOnes: boolean } | undefined {
  if ((hi & TABLE_RESERVED_HI) !== 0 || (lo & TABLE_RESERVED_LO) !== 0) return undefined
  const offset = (hi & 0x00ffffff) * 0x100000000 + ((lo & 0xfffffe00) >>> 0)
  if (offset % clusterSize !== 0) return undefined
  if (offset !== 0 && (lo & 1)) return undefined
  return { offset, allOnes: offset === 0 && (lo & 1) === 1 }
}

/** Names of the flags as `info` lists them (QAPI Qcow2BitmapInfoFlags). */
export function flagNames (flags: number): string[] {
  const names: string[] = []
  if (flags & FLAG_IN_USE) names.push('in-use')
  if (flags & FLAG_AUTO) names.push('auto')
  return names
}
