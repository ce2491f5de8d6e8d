// The qcow2 header and its extensions (docs/interop/qcow2.txt). Pure
// functions: decode from and encode to Buffers; validation against the file
// lives in validate.ts.

export const QCOW2_MAGIC = 0x514649fb

export const INCOMPAT_DIRTY = 1n << 0n
export const INCOMPAT_CORRUPT = 1n << 1n
export const INCOMPAT_DATA_FILE = 1n << 2n
export const INCOMPAT_COMPRESSION = 1n << 3n
export const INCOMPAT_EXTL2 = 1n << 4n
export const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2

export const COMPAT_LAZY_REFCOUNTS = 1n << 0n
export const COMPAT_KNOWN = COMPAT_LAZY_REFCOUNTS

export const AUTOCLEAR_BITMAPS = 1n << 0n
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n
export const AUTOCLEAR_KNOWN = AUTOCLEAR_BITMAPS | AUTOCLEAR_DATA_FILE_RAW

export const CRYPT_NONE = 0
export const CRYPT_AES = 1
export const CRYPT_LUKS = 2

export const COMPRESSION_ZLIB = 0
export const COMPRESSION_ZSTD = 1

export const EXT_END = 0x00000000
export const EXT_BACKING_FORMAT = 0xe2792aca
export const EXT_FEATURE_TABLE = 0x6803f857
export const EXT_BITMAPS = 0x23852875
export const EXT_CRYPTO = 0x0537be77
export const EXT_DATA_FILE = 0x44415441

export const V2_HEADER_LENGTH = 72
export const V3_HEADER_LENGTH = 104
/** what qemu writes for v3: 104 bytes plus the compression type byte, padded to 8 */
export const V3_HEADER_LENGTH_WITH_COMPRESSION = 112

export interface FeatureName { type: number, bit: number, name: string }

export interface HeaderExtension { type: number, data: Buffer }

export interface Qcow2Header {
  version: number
  backingFileOffset: number
  backingFileSize: number
  clusterBits: number
  size: number
  cryptMethod: number
  l1Size: number
  l1TableOffset: number
  refcountTableOffset: number
  refcountTableClusters: number
  nbSnapshots: number
  snapshotsOffset: number
  incompatible: bigint
  compatible: bigint
  autoclear: bigint
  refcountOrder: number
  headerLength: number
  compressionType: number
  /** extensions in file order, including unknown ones (kept when rewriting) */
  extensions: HeaderExtension[]
  backingFile?: string
  backingFormat?: string
  featureNames: FeatureName[]
  dataFile?: string
  cryptoHeader?: { offset: number, length: number }
  bitmapsExt?: { nbBitmaps: number, directorySize: number, directoryOffset: number }
}

/** u64 field as a JS number; values past 2^53 become Infinity so range checks reject them. */
export function readU64 (buf: Buffer, pos: number): number {
  const hi = buf.readUInt32BE(pos)
  const lo = buf.readUInt32BE(pos + 4)
  if (hi >= 0x200000) return Infinity
  return hi * 0x100000000 + lo
}

export function writeU64 (buf: Buffer, pos: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x100000000), pos)
  buf.writeUInt32BE(value >>> 0, pos + 4)
}

export class HeaderError extends Error {}

/** Decode the fixed header; `buf` must hold at least the first cluster (or the whole file if smaller). */
export function decodeHeader (buf: Buffer): Qcow2Header {
  if (buf.length < V2_HEADER_LENGTH || buf.readUInt32BE(0) !== QCOW2_MAGIC) throw new HeaderError('Image is not in qcow2 format')
  const version = buf.readUInt32BE(4)
  const h: Qcow2Header = {
    version,
    backingFileOffset: readU64(buf, 8),
    backingFileSize: buf.readUInt32BE(16),
    clusterBits: buf.readUInt32BE(20),
    size: readU64(buf, 24),
    cryptMethod: buf.readUInt32BE(32),
    l1Size: buf.readUInt32BE(36),
    l1TableOffset: readU64(buf, 40),
    refcountTableOffset: readU64(buf, 48),
    refcountTableClusters: buf.readUInt32BE(56),
    nbSnapshots: buf.readUInt32BE(60),
    snapshotsOffset: readU64(buf, 64),
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: COMPRESSION_ZLIB,
    extensions: [],
    featureNames: [],
  }
  if (version >= 3) {
    if (buf.length < V3_HEADER_LENGTH) throw new HeaderError('qcow2 header too short')
    h.incompatible = buf.readBigUInt64BE(72)
    h.compatible = buf.readBigUInt64BE(80)
    h.autoclear = buf.readBigUInt64BE(88)
    h.refcountOrder = buf.readUInt32BE(96)
    h.headerLength = buf.readUInt32BE(100)
    if (h.headerLength > 104 && buf.length > 104) h.compressionType = buf[104]
  }
  return h
}

/**
 * Parse the header extensions that follow the header, up to `end` (the first
 * cluster, or the backing file name if it comes first). Throws HeaderError
 * with qemu's wording for malformed extensions.
 */
export function decodeExtensions (buf: Buffer, h: Qcow2Header, end: number): void {
  let pos = h.version >= 3 ? h.headerLength : V2_HEADER_LENGTH
  while (pos < end) {
    if (pos + 8 > end) throw new HeaderError('Header extension too large')
    const type = buf.readUInt32BE(pos)
    const len = buf.readUInt32BE(pos + 4)
    pos += 8
    if (type === EXT_END) break
    if (len > end - pos) throw new HeaderError('Header extension too large')
    const data = Buffer.from(buf.subarray(pos, pos + len))
    h.extensions.push({ type, data })
    switch (type) {
      case EXT_BACKING_FORMAT:
        h.backingFormat = data.toString('latin1').replace(/\0.*$/s, '')
        break
      case EXT_FEATURE_TABLE:
        for (let i = 0; i + 48 <= data.length; i += 48) {
          h.featureNames.push({ type: data[i], bit: data[i + 1], name: data.subarray(i + 2, i + 48).toString('latin1').replace(/\0.*$/s, '') })
        }
        break
      case EXT_DATA_FILE:
        h.dataFile = data.toString('utf8').replace(/\0.*$/s, '')
        break
      case EXT_CRYPTO:
        // a wrong length is refused by the opener, which knows whether LUKS is in use
        h.cryptoHeader = len >= 16 ? { offset: readU64(data, 0), length: readU64(data, 8) } : { offset: 0, length: 0 }
        break
      case EXT_BITMAPS:
        if (len >= 24) {
          h.bitmapsExt = { nbBitmaps: data.readUInt32BE(0), directorySize: readU64(data, 8), directoryOffset: readU64(data, 16) }
        }
        break
      default:
        break
    }
    pos += (len + 7) & ~7
  }
}

/** Encode the fixed header (72 or headerLength bytes). Extensions are encoded separately. */
export function encodeHeader (h: Qcow2Header): Buffer {
  const len = h.version >= 3 ? h.headerLength : V2_HEADER_LENGTH
  const buf = Buffer.alloc(len)
  buf.writeUInt32BE(QCOW2_MAGIC, 0)
  buf.writeUInt32BE(h.version, 4)
  writeU64(buf, 8, h.backingFileOffset)
  buf.writeUInt32BE(h.backingFileSize, 16)
  buf.writeUInt32BE(h.clusterBits, 20)
  writeU64(buf, 24, h.size)
  buf.writeUInt32BE(h.cryptMethod, 32)
  buf.writeUInt32BE(h.l1Size, 36)
  writeU64(buf, 40, h.l1TableOffset)
  writeU64(buf, 48, h.refcountTableOffset)
  buf.writeUInt32BE(h.refcountTableClusters, 56)
  buf.writeUInt32BE(h.nbSnapshots, 60)
  writeU64(buf, 64, h.snapshotsOffset)
  if (h.version >= 3) {
    buf.writeBigUInt64BE(h.incompatible, 72)
    buf.writeBigUInt64BE(h.compatible, 80)
    buf.writeBigUInt64BE(h.autoclear, 88)
    buf.writeUInt32BE(h.refcountOrder, 96)
    buf.writeUInt32BE(h.headerLength, 100)
    if (h.headerLength > 104) buf[104] = h.compressionType
  }
  return buf
}

/** Encode one extension: type, length, data padded to 8 bytes. */
export function encodeExtension (type: number, data: Buffer): Buffer {
  const out = Buffer.alloc(8 + ((data.length + 7) & ~7))
  out.writeUInt32BE(type, 0)
  out.writeUInt32BE(data.length, 4)
  data.copy(out, 8)
  return out
}
