// Rewriting the whole header cluster, as qemu does when the backing file
// changes: the fixed header, then the extensions in qemu's order (backing
// format, external data file, crypto header, feature name table, bitmaps,
// extensions we do not know, end marker), then the backing file name; the
// rest of the cluster is zeroed. One write of one cluster is the commit point.
import { BlockError } from '../../cli/errors.js'
import {
  EXT_BACKING_FORMAT, EXT_BITMAPS, EXT_CRYPTO, EXT_DATA_FILE, EXT_END, EXT_FEATURE_TABLE,
  V2_HEADER_LENGTH, V3_HEADER_LENGTH_WITH_COMPRESSION, encodeExtension, encodeHeader, type HeaderExtension, type Qcow2Header,
} from './header.js'
import { MAX_BACKING_NAME } from './open.js'
import type { Qcow2Image } from './driver.js'

/** The feature name table qemu 7.2 writes into every version 3 header. */
const FEATURE_NAMES: Array<[number, number, string]> = [
  [0, 0, 'dirty bit'], [0, 1, 'corrupt bit'], [0, 2, 'external data file'], [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'], [1, 0, 'lazy refcounts'], [2, 0, 'bitmaps'], [2, 1, 'raw external data'],
]

export function featureNameTable (): Buffer {
  const buf = Buffer.alloc(FEATURE_NAMES.length * 48)
  FEATURE_NAMES.forEach(([type, bit, name], i) => {
    buf[i * 48] = type
    buf[i * 48 + 1] = bit
    buf.write(name, i * 48 + 2, 'latin1')
  })
  return buf
}

const REWRITTEN = new Set([EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_CRYPTO, EXT_FEATURE_TABLE, EXT_BITMAPS, EXT_END])

/** Change the backing file name and format recorded in the header ('' or undefined name: none). */
export async function rewriteBacking (img: Qcow2Image, name: string | undefined, format: string | undefined): Promise<void> {
  await rewriteHeader(img, { backing: { name, format } })
}

type TableFields = Pick<Qcow2Header, 'l1TableOffset' | 'refcountTableOffset' | 'refcountTableClusters'>

/**
 * Rewrite the header cluster from the in-memory header, with the backing
 * file (when given) and table `fields` changed (qemu rewrites the whole
 * cluster whenever its header changes beyond a single field, e.g. when an
 * image is emptied).
 */
export async function rewriteHeader (img: Qcow2Image,
  change: { backing?: { name?: string, format?: string }, fields?: Partial<TableFields> }): Promise<void> {
  const h = img.header
  const { name, format } = change.backing ?? { name: h.backingFile, format: h.backingFormat }
  const fields = change.fields ?? {}
  const cs = img.geo.clusterSize
  const v3 = h.version >= 3
  const backing = name ? Buffer.from(name, 'utf8') : Buffer.alloc(0)
  if (backing.length > MAX_BACKING_NAME) throw new BlockError('Invalid argument', 'EINVAL')
  const first = Buffer.alloc(cs)
  await img.store.read(first, 0)

  const kept = (type: number): HeaderExtension | undefined => h.extensions.find(e => e.type === type)
  const exts: HeaderExtension[] = []
  if (backing.length > 0 && format) exts.push({ type: EXT_BACKING_FORMAT, data: Buffer.from(format, 'utf8') })
  for (const type of [EXT_DATA_FILE, EXT_CRYPTO]) {
    const e = kept(type)
    if (e) exts.push(e)
  }
  // qemu 7.2 writes the feature name table only with clusters of 8 KiB and more
  if (v3 && cs >= 8192) exts.push({ type: EXT_FEATURE_TABLE, data: featureNameTable() })
  const bitmaps = kept(EXT_BITMAPS)
  if (bitmaps) exts.push(bitmaps)
  for (const e of h.extensions) if (!REWRITTEN.has(e.type)) exts.push(e)

  // qemu writes its own header length (keeping fields it does not know past it)
  const headerLength = v3 ? Math.max(h.headerLength, V3_HEADER_LENGTH_WITH_COMPRESSION) : V2_HEADER_LENGTH
  const encodedExts = exts.map(e => encodeExtension(e.type, e.data))
  const nameOffset = headerLength + encodedExts.reduce((n, e) => n + e.length, 0) + 8
  if (nameOffset + backing.length > cs) throw new BlockError('No space left in the file header', 'ENOSPC')

  const next = { ...h, ...fields, headerLength, backingFileOffset: backing.length > 0 ? nameOffset : 0, backingFileSize: backing.length }
  const buf = Buffer.alloc(cs)
  encodeHeader(next).copy(buf, 0)
  if (v3 && h.headerLength > V3_HEADER_LENGTH_WITH_COMPRESSION) {
    first.copy(buf, V3_HEADER_LENGTH_WITH_COMPRESSION, V3_HEADER_LENGTH_WITH_COMPRESSION, h.headerLength)
  }
  let pos = headerLength
  for (const e of encodedExts) { e.copy(buf, pos); pos += e.length }
  backing.copy(buf, nameOffset)
  await img.store.write(buf, 0)
  await img.store.flush()

  Object.assign(h, fields)
  h.headerLength = headerLength
  h.backingFileOffset = next.backingFileOffset
  h.backingFileSize = next.backingFileSize
  h.extensions = exts
  h.backingFile = backing.length > 0 ? name : undefined
  h.backingFormat = backing.length > 0 ? format : undefined
  img.backingName = h.backingFile
  img.backingFormat = h.backingFormat
}
