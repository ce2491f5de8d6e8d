// The GUID partition table: a header at LBA 1 (CRC-checked) describing an
// array of entries (CRC-checked), with a backup header at the last LBA used
// when the primary is damaged. Partition N is entry N-1, as Linux numbers
// them. Every field is validated before it sizes a read.
import { crc32 } from './crc32.js'
import { clipToDisk, type Partition, type ReadAt } from './types.js'

const SIGNATURE = 'EFI PART'
const MIN_HEADER = 92
const ENTRY_MIN = 128
/** bounds the entry array we are willing to read (the usual one is 16 KiB) */
export const MAX_ENTRY_BYTES = 4 << 20

export interface GptHeader {
  sectorSize: number
  myLba: number
  alternateLba: number
  firstUsable: number
  lastUsable: number
  diskGuid: string
  entriesLba: number
  entryCount: number
  entrySize: number
  entriesCrc: number
}

function u64 (buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off)
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}

/** A GUID in its textual form (the first three fields little-endian). */
export function formatGuid (b: Buffer): string {
  const h = (s: number, e: number, rev: boolean): string => {
    const part = Buffer.from(b.subarray(s, e))
    if (rev) part.reverse()
    return part.toString('hex')
  }
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`
}

/** Decode and validate a header sector read from `lba`; null when it is not a valid GPT header. */
export function decodeGptHeader (sector: Buffer, lba: number, sectorSize: number, diskSectors: number): GptHeader | null {
  if (sector.length < sectorSize || sector.toString('latin1', 0, 8) !== SIGNATURE) return null
  const headerSize = sector.readUInt32LE(12)
  if (headerSize < MIN_HEADER || headerSize > sectorSize) return null
  const copy = Buffer.from(sector.subarray(0, headerSize))
  const crc = copy.readUInt32LE(16)
  copy.writeUInt32LE(0, 16)
  if (crc32(copy) !== crc) return null
  const h: GptHeader = {
    sectorSize,
    myLba: u64(sector, 24),
    alternateLba: u64(sector, 32),
    firstUsable: u64(sector, 40),
    lastUsable: u64(sector, 48),
    diskGuid: formatGuid(sector.subarray(56, 72)),
    entriesLba: u64(sector, 72),
    entryCount: sector.readUInt32LE(80),
    entrySize: sector.readUInt32LE(84),
    entriesCrc: sector.readUInt32LE(88),
  }
  if (h.myLba !== lba) return null
  if (h.firstUsable > h.lastUsable || h.lastUsable >= diskSectors) return null
  // entry size: 128 * 2^n (UEFI), and a bounded array that lies on the disk
  if (h.entrySize < ENTRY_MIN || h.entrySize % ENTRY_MIN !== 0 || (h.entrySize & (h.entrySize - 1)) !== 0) return null
  if (h.entryCount * h.entrySize > MAX_ENTRY_BYTES) return null
  const arraySectors = Math.ceil(h.entryCount * h.entrySize / sectorSize)
  if (h.entriesLba < 2 || h.entriesLba + arraySectors > diskSectors) return null
  return h
}

/** The partitions in a validated header's entry array, or null when the array's CRC is wrong. */
export function decodeGptEntries (h: GptHeader, array: Buffer, diskSize: number): Partition[] | null {
  const bytes = h.entryCount * h.entrySize
  if (array.length < bytes || crc32(array.subarray(0, bytes)) !== h.entriesCrc) return null
  const out: Partition[] = []
  const diskSectors = Math.floor(diskSize / h.sectorSize)
  for (let i = 0; i < h.entryCount; i++) {
    const e = array.subarray(i * h.entrySize, (i + 1) * h.entrySize)
    const type = e.subarray(0, 16)
    if (type.every(b => b === 0)) continue
    const first = u64(e, 32)
    const last = u64(e, 40)
    // like Linux: an entry must be ordered and end on the disk
    if (first > last || last >= diskSectors) continue
    const raw = e.subarray(56, 128).toString('utf16le')
    const nul = raw.indexOf('\0')
    const name = nul < 0 ? raw : raw.slice(0, nul)
    const p = clipToDisk({ number: i + 1, start: first * h.sectorSize, length: (last - first + 1) * h.sectorSize, type: formatGuid(type), ...(name ? { name } : {}) }, diskSize)
    if (p) out.push(p)
  }
  return out
}

async function tryHeader (read: ReadAt, lba: number, sectorSize: number, diskSize: number): Promise<Partition[] | null> {
  const diskSectors = Math.floor(diskSize / sectorSize)
  if (lba < 1 || lba >= diskSectors) return null
  const h = decodeGptHeader(await read(lba * sectorSize, sectorSize), lba, sectorSize, diskSectors)
  if (!h) return null
  return decodeGptEntries(h, await read(h.entriesLba * sectorSize, h.entryCount * h.entrySize), diskSize)
}

/**
 * The GPT partitions, or null when neither the primary nor the backup
 * table is valid. Tries 512-byte sectors, then 4096-byte ones.
 */
export async function readGptPartitions (read: ReadAt, diskSize: number): Promise<Partition[] | null> {
  for (const sectorSize of [512, 4096]) {
    const primary = await tryHeader(read, 1, sectorSize, diskSize)
    if (primary) return primary
    const backup = await tryHeader(read, Math.floor(diskSize / sectorSize) - 1, sectorSize, diskSize)
    if (backup) return backup
  }
  return null
}
