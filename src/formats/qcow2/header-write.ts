// Rewriting the whole qcow2 header cluster of an existing image (bitmaps
// extension changes, amend, dropping invalid extensions on a read-write
// open). The header is rebuilt the way qemu writes it: its own header length
// (72 bytes for version 2, 112 for version 3), then the extensions in qemu's
// order (backing format, external data file, crypto header, feature name
// table, bitmaps, then extensions qimg does not know, kept as found), the end
// marker and the backing file name.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import {
  EXT_BACKING_FORMAT, EXT_BITMAPS, EXT_CRYPTO, EXT_DATA_FILE, EXT_FEATURE_TABLE, V2_HEADER_LENGTH,
  V3_HEADER_LENGTH_WITH_COMPRESSION, encodeExtension, encodeHeader, writeU64, type Qcow2Header,
} from './header.js'
import { encodeBitmapsExtension } from './bitmaps.js'

/** The feature name table qemu writes into version 3 headers (at creation too). */
const FEATURES: Array<[number, number, string]> = [
  [0, 0, 'dirty bit'], [0, 1, 'corrupt bit'], [0, 2, 'external data file'], [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'], [1, 0, 'lazy refcounts'], [2, 0, 'bitmaps'], [2, 1, 'raw external data'],
]

export function featureNameTable (): Buffer {
  const buf = Buffer.alloc(FEATURES.length * 48)
  FEATURES.forEach(([type, bit, name], i) => {
    buf[i * 48] = type
    buf[i * 48 + 1] = bit
    buf.write(name, i * 48 + 2, 'latin1')
  })
  return buf
}

const KNOWN = new Set([EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_CRYPTO, EXT_FEATURE_TABLE, EXT_BITMAPS])

/**
 * The header cluster for `h` (which is updated: header length, backing file
 * offset and size, the extension list). Throws when it does not fit.
 */
export function encodeHeaderCluster (h: Qcow2Header, clusterSize: number): Buffer {
  const v3 = h.version >= 3
  h.headerLength = v3 ? V3_HEADER_LENGTH_WITH_COMPRESSION : V2_HEADER_LENGTH
  const exts: Array<{ type: number, data: Buffer }> = []
  if (h.backingFormat !== undefined) exts.push({ type: EXT_BACKING_FORMAT, data: Buffer.from(h.backingFormat, 'utf8') })
  if (h.dataFile !== undefined) exts.push({ type: EXT_DATA_FILE, data: Buffer.from(h.dataFile, 'utf8') })
  if (h.cryptoHeader) {
    const data = Buffer.alloc(16)
    writeU64(data, 0, h.cryptoHeader.offset)
    writeU64(data, 8, h.cryptoHeader.length)
    exts.push({ type: EXT_CRYPTO, data })
  }
  // observed: qemu writes the feature table with clusters of 8 KiB or more only
  if (v3 && clusterSize >= 8192) exts.push({ type: EXT_FEATURE_TABLE, data: featureNameTable() })
  if (h.bitmapsExt) {
    exts.push({
      type: EXT_BITMAPS,
      data: encodeBitmapsExtension({
        nbBitmaps: h.bitmapsExt.nbBitmaps,
        reserved: 0,
        directorySize: BigInt(h.bitmapsExt.directorySize),
        directoryOffset: BigInt(h.bitmapsExt.directoryOffset),
      }),
    })
  }
  for (const x of h.extensions) if (!KNOWN.has(x.type)) exts.push(x)
  const encoded = exts.map(x => encodeExtension(x.type, x.data))
  const backing = h.backingFile !== undefined ? Buffer.from(h.backingFile, 'utf8') : Buffer.alloc(0)
  const extEnd = h.headerLength + encoded.reduce((n, e) => n + e.length, 0) + 8
  if (extEnd + backing.length > clusterSize) throw new BlockError('Cannot update the image header: it does not fit in the first cluster', 'ENOSPC')
  h.backingFileOffset = h.backingFile !== undefined ? extEnd : 0
  h.backingFileSize = backing.length
  h.extensions = exts
  const buf = Buffer.alloc(clusterSize)
  encodeHeader(h).copy(buf, 0)
  let pos = h.headerLength
  for (const e of encoded) { e.copy(buf, pos); pos += e.length }
  backing.copy(buf, extEnd)
  return buf
}

/**
 * Write the header cluster and flush: the commit point of a larger change.
 * Only the used bytes are written (one sector in the usual case, which the
 * disk writes atomically); the rest of the cluster is zeroed by the same
 * write only when it held something before.
 */
export async function rewriteHeader (store: ByteStore, h: Qcow2Header, clusterSize: number): Promise<void> {
  const oldEnd = headerBytes(h)
  const buf = encodeHeaderCluster(h, clusterSize)
  const used = Math.max(headerBytes(h), oldEnd)
  await store.write(buf.subarray(0, Math.min(clusterSize, Math.ceil(used / 512) * 512)), 0)
  await store.flush()
}

/** Bytes of the header cluster in use: header, extensions, end marker, backing file name. */
function headerBytes (h: Qcow2Header): number {
  let end = h.headerLength + h.extensions.reduce((n, x) => n + 8 + ((x.data.length + 7) & ~7), 0) + 8
  if (h.backingFileOffset > 0) end = Math.max(end, h.backingFileOffset + h.backingFileSize)
  return end
}
