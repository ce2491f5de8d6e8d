// Reading and validating a qcow2 image's metadata at open time. Every field is
// checked before it is used to size an allocation or a read. The checks run
// in the order qemu runs them, so a header with several faults is refused
// with the same message as by qemu-img (observed behaviour of qemu 7.2).
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import type { OpenContext } from '../../block/types.js'
import type { ClusterCrypto } from './crypto-api.js'
import {
  AUTOCLEAR_BITMAPS, AUTOCLEAR_DATA_FILE_RAW, COMPRESSION_ZLIB, COMPRESSION_ZSTD, CRYPT_LUKS, CRYPT_NONE,
  EXT_BACKING_FORMAT, EXT_BITMAPS, EXT_CRYPTO, HeaderError, INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, INCOMPAT_KNOWN,
  QCOW2_MAGIC, V2_HEADER_LENGTH, V3_HEADER_LENGTH, decodeExtensions, decodeHeader, type Qcow2Header,
} from './header.js'
import { Geometry } from './layout.js'
import { cString, readSnapshotTable, SnapshotTableError, type Qcow2Snapshot } from './snapshots.js'
import type { LoadedBitmap } from './bitmap-load.js'
import { BitmapError, decodeBitmapsExtension, validateBitmapsExtension } from './bitmaps.js'
import { readTable } from './table-io.js'

/** Limits qemu enforces (and that bound our allocations). */
export const MAX_L1_BYTES = 32 << 20
export const MAX_REFTABLE_BYTES = 8 << 20
export const MAX_SNAPSHOTS = 65536
export const MAX_BACKING_NAME = 1023
const INT64_MAX = (1n << 63n) - 1n
const INT_MAX = 0x7fffffff
/** sizeof(QCowSnapshotHeader): what qemu's table check assumes per snapshot */
const SNAPSHOT_HEADER_SIZE = 40
/** the backing format name must fit qemu's 16-byte field with its NUL */
const MAX_BACKING_FORMAT = 15

export interface Qcow2Metadata {
  header: Qcow2Header
  geo: Geometry
  l1: Buffer
  dataStore: ByteStore
  crypto: ClusterCrypto | null
  snapshots: Qcow2Snapshot[]
  /** persistent bitmaps (consistent ones only; none when the autoclear bit is clear) */
  bitmaps: LoadedBitmap[]
}

function fail (message: string, errno = 'EINVAL'): never {
  throw new BlockError(message, errno)
}

/**
 * qemu's table check: the table must fit the size limit and start at a
 * cluster boundary (the name is "Active L1 table", "Snapshot table", ...).
 */
export function validateTable (name: string, offset: bigint, entries: number, entryLen: number, maxBytes: number, clusterSize: number): void {
  if (entries > Math.floor(maxBytes / entryLen)) fail(`${name} too large`, 'EFBIG')
  const size = BigInt(entries) * BigInt(entryLen)
  if (offset > INT64_MAX - size || offset % BigInt(clusterSize) !== 0n) fail(`${name} offset invalid`)
}

/** "Unsupported qcow2 feature(s): a, b" with names from the feature table where known. */
function unsupportedFeatures (h: Qcow2Header, mask: bigint): string {
  const parts: string[] = []
  let rest = mask
  for (const f of h.featureNames) {
    if (f.type !== 0) continue
    const bit = 1n << BigInt(f.bit)
    if (rest & bit) { parts.push(f.name); rest &= ~bit }
  }
  if (rest) parts.push(`Unknown incompatible feature: ${rest.toString(16)}`)
  return `Unsupported qcow2 feature(s): ${parts.join(', ')}`
}

/** The header fields qemu validates as 64-bit values, exactly. */
interface RawFields { size: bigint, l1TableOffset: bigint, refcountTableOffset: bigint, snapshotsOffset: bigint, backingFileOffset: bigint }

function rawFields (fixed: Buffer): RawFields {
  return {
    backingFileOffset: fixed.readBigUInt64BE(8),
    size: fixed.readBigUInt64BE(24),
    l1TableOffset: fixed.readBigUInt64BE(40),
    refcountTableOffset: fixed.readBigUInt64BE(48),
    snapshotsOffset: fixed.readBigUInt64BE(64),
  }
}

/** Header, version, cluster size and header length: the checks before anything else is read. */
async function readFixedHeader (store: ByteStore): Promise<{ header: Qcow2Header, raw: RawFields }> {
  // qemu reads the fixed header with zeros past the end of a short file
  const fixed = Buffer.alloc(V3_HEADER_LENGTH + 8)
  await store.read(fixed, 0)
  if (fixed.readUInt32BE(0) !== QCOW2_MAGIC) fail('Image is not in qcow2 format')
  const version = fixed.readUInt32BE(4)
  if (version < 2 || version > 3) fail(`Unsupported qcow2 version ${version}`, 'ENOTSUP')
  const clusterBits = fixed.readUInt32BE(20)
  if (clusterBits < 9 || clusterBits > 21) fail(`Unsupported cluster size: 2^${clusterBits}`)
  let header: Qcow2Header
  try {
    header = decodeHeader(fixed)
  } catch (e) {
    if (e instanceof HeaderError) fail(e.message)
    throw e
  }
  const clusterSize = 2 ** clusterBits
  if (version >= 3) {
    if (header.headerLength < V3_HEADER_LENGTH) fail('qcow2 header too short')
    if (header.headerLength > clusterSize) fail('qcow2 header exceeds cluster size')
  } else {
    header.headerLength = V2_HEADER_LENGTH
  }
  const raw = rawFields(fixed)
  if (raw.backingFileOffset > BigInt(clusterSize)) fail('Invalid backing file offset')
  return { header, raw }
}

function checkCompressionType (h: Qcow2Header): void {
  if (h.compressionType !== COMPRESSION_ZLIB && h.compressionType !== COMPRESSION_ZSTD) {
    fail(`qcow2: unknown compression type: ${h.compressionType}`, 'ENOTSUP')
  }
  if (h.compressionType !== COMPRESSION_ZLIB && !(h.incompatible & INCOMPAT_COMPRESSION)) {
    fail('qcow2: Compression type incompatible feature bit must be set')
  }
  if (h.compressionType === COMPRESSION_ZLIB && (h.incompatible & INCOMPAT_COMPRESSION)) {
    fail('qcow2: Compression type incompatible feature bit must not be set')
  }
}

/** Parse the extensions of the first cluster into `h`; qemu's message on a malformed one. */
function parseExtensions (first: Buffer, h: Qcow2Header): void {
  const end = h.backingFileOffset > 0 ? h.backingFileOffset : first.length
  try {
    decodeExtensions(first, h, end)
  } catch (e) {
    if (e instanceof HeaderError) fail(e.message)
    throw e
  }
  for (const x of h.extensions) {
    if (x.type === EXT_BACKING_FORMAT && x.data.length > MAX_BACKING_FORMAT) {
      fail(`ERROR: ext_backing_format: len=${x.data.length} too large (>=16)`)
    }
  }
  const crypto = h.extensions.find(x => x.type === EXT_CRYPTO)
  if (crypto !== undefined) {
    if (h.cryptMethod !== CRYPT_LUKS) fail('CRYPTO header extension only expected with LUKS encryption method')
    if (crypto.data.length !== 16) fail(`CRYPTO header extension size ${crypto.data.length}, but expected size 16`)
    const offset = h.cryptoHeader!.offset
    const clusterSize = 2 ** h.clusterBits
    if (offset % clusterSize !== 0) fail(`Encryption header offset '${offset}' is not a multiple of cluster size '${clusterSize}'`)
  }
}

/**
 * The bitmaps extension: its length always matters; the rest only when the
 * autoclear bit says the bitmaps are consistent (otherwise qemu warns and
 * ignores them). Returns the extension data of consistent bitmaps.
 */
function checkBitmapsExtension (h: Qcow2Header, ctx: OpenContext): Buffer | undefined {
  const data = h.extensions.find(x => x.type === EXT_BITMAPS)?.data
  if (data === undefined) return undefined
  try {
    const ext = decodeBitmapsExtension(data)
    if (h.version < 3) {
      // version 2 has no autoclear bits to vouch for the bitmaps (qemu's downgrade leaves them behind)
      ctx.warn('warning: This qcow2 v2 image contains bitmaps, but they may have been modified by a program without persistent bitmap support; so now they must all be considered inconsistent\n', { prefixed: true })
      ctx.warn('Some clusters may be leaked, run \'qemu-img check -r\' on the image file to fix.')
      return undefined
    }
    if (!(h.autoclear & AUTOCLEAR_BITMAPS)) {
      ctx.warn('warning: a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent\n', { prefixed: true })
      ctx.warn('Some clusters may be leaked, run \'qemu-img check -r\' on the image file to fix.') // no newline, as qemu prints it
      return undefined
    }
    validateBitmapsExtension(ext, 2 ** h.clusterBits)
  } catch (e) {
    if (e instanceof BitmapError) fail(e.message)
    throw e
  }
  return data
}

/** Only the feature names, for the unsupported-features message: malformed extensions are no error here. */
function featureNamesOnly (first: Buffer, h: Qcow2Header): Qcow2Header {
  const copy: Qcow2Header = { ...h, extensions: [], featureNames: [] }
  try {
    decodeExtensions(first, copy, h.backingFileOffset > 0 ? h.backingFileOffset : first.length)
  } catch { /* names found before the fault still count */ }
  return copy
}

export async function readQcow2Metadata (store: ByteStore, ctx: OpenContext): Promise<Qcow2Metadata> {
  const { header, raw } = await readFixedHeader(store)
  const clusterSize = 2 ** header.clusterBits

  // the first cluster holds the header, its extensions and the backing file name
  const first = Buffer.alloc(clusterSize)
  await store.read(first, 0)
  header.compressionType = header.version >= 3 && header.headerLength > V3_HEADER_LENGTH ? first[104] : COMPRESSION_ZLIB
  checkCompressionType(header)

  const unknownIncompat = header.incompatible & ~INCOMPAT_KNOWN
  if (unknownIncompat) fail(unsupportedFeatures(featureNamesOnly(first, header), unknownIncompat), 'ENOTSUP')
  // check opens a corrupt image read-write to repair it
  if ((header.incompatible & INCOMPAT_CORRUPT) && !ctx.readOnly && !ctx.check) fail('qcow2: Image is corrupt; cannot be opened read/write', 'EACCES')

  const extendedL2 = (header.incompatible & INCOMPAT_EXTL2) !== 0n
  if (extendedL2 && header.clusterBits < 14) fail(`Unsupported subcluster size: ${clusterSize / 32}`)
  if (header.refcountOrder > 6) fail('Reference count entry width too large; may not exceed 64 bits')

  if (header.refcountTableClusters === 0) fail('Image does not contain a reference count table')
  validateTable('Reference count table', raw.refcountTableOffset, header.refcountTableClusters, clusterSize, MAX_REFTABLE_BYTES, clusterSize)

  // check reports (and with -r all drops) the snapshots beyond the limit
  const nbSnapshots = ctx.check ? Math.min(header.nbSnapshots, MAX_SNAPSHOTS) : header.nbSnapshots
  if (nbSnapshots > MAX_SNAPSHOTS) fail('Snapshot table too large', 'EFBIG')
  validateTable('Snapshot table', raw.snapshotsOffset, nbSnapshots, SNAPSHOT_HEADER_SIZE, Infinity, clusterSize)

  validateTable('Active L1 table', raw.l1TableOffset, header.l1Size, 8, MAX_L1_BYTES, clusterSize)
  const geo = new Geometry(header.clusterBits, extendedL2)
  // computed in 64 bits as qemu does: sizes just below 2^64 wrap around and pass
  const needed = ((raw.size + BigInt(geo.l2Coverage) - 1n) & ((1n << 64n) - 1n)) / BigInt(geo.l2Coverage)
  if (needed > BigInt(INT_MAX)) fail('Image is too big', 'EFBIG')
  if (BigInt(header.l1Size) < needed) fail('L1 table is too small')
  const l1 = Buffer.alloc(header.l1Size * 8)
  if (header.l1Size > 0) {
    try {
      await readTable(store, l1, raw.l1TableOffset)
    } catch (e) {
      if (e instanceof BlockError) fail(`Could not read L1 table: ${e.message}`, e.errno)
      throw e
    }
  }

  if (header.cryptMethod > CRYPT_LUKS) fail(`Unsupported encryption method ${header.cryptMethod | 0}`) // printed with %d

  parseExtensions(first, header)
  const bitmapsData = checkBitmapsExtension(header, ctx)


  const dataStore = ctx.noIO ? store : await openDataFile(store, header, ctx)
  try {
    if (header.backingFileOffset > 0) {
      if (header.backingFileSize > Math.min(MAX_BACKING_NAME, clusterSize - header.backingFileOffset)) {
        fail('Backing file name too long')
      }
      header.backingFile = cString(first.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize))
    }

    let snapshots: Qcow2Snapshot[] = []
    if (nbSnapshots > 0) {
      try {
        snapshots = await readSnapshotTable((buf, off) => readTable(store, buf, raw.snapshotsOffset + BigInt(off)), 0, nbSnapshots)
      } catch (e) {
        // check reads the snapshot table itself and reports what is wrong with it
        if (ctx.check && (e instanceof SnapshotTableError || e instanceof BlockError)) snapshots = []
        else if (e instanceof SnapshotTableError) fail(e.message)
        else if (e instanceof BlockError) fail(`Failed to read snapshot table: ${e.message}`, e.errno)
        else throw e
      }
    }

    const bitmaps = bitmapsData === undefined ? [] : await (await import('./bitmap-load.js')).loadBitmapDirectory(store, bitmapsData, header, Number(raw.size))

    let crypto: ClusterCrypto | null = null
    if (header.cryptMethod !== CRYPT_NONE) {
      const { openQcow2Crypto } = await import('../../crypto/qcow2-crypto.js')
      crypto = await openQcow2Crypto(header, store, ctx)
    } else if (ctx.options['encrypt.format'] !== undefined) {
      const { checkUnencryptedOptions } = await import('../../crypto/qcow2-crypto.js')
      checkUnencryptedOptions(ctx.options)
    }
    // the block layer's view: whole sectors, at most INT64_MAX bytes
    if (raw.size / 512n * 512n > INT64_MAX) fail('Could not refresh total sector count: File too large', 'EFBIG')
    // sizes past 2^53 cannot be addressed exactly with JavaScript numbers
    if (raw.size > BigInt(Number.MAX_SAFE_INTEGER)) fail('Image is too big for qimg (virtual size above 2^53 bytes)', 'EFBIG')
    return { header, geo, l1, dataStore, crypto, snapshots, bitmaps }
  } catch (e) {
    if (dataStore !== store) await dataStore.close().catch(() => undefined)
    throw e
  }
}

/**
 * The external data file: named by the 'data-file.filename' option or the
 * header extension, opened as qemu does, relative to the working directory.
 */
async function openDataFile (store: ByteStore, h: Qcow2Header, ctx: OpenContext): Promise<ByteStore> {
  const nodeName = ctx.options['data-file']
  const optName = ctx.options['data-file.filename']
  // a node name refers to a block device qemu-img never has
  if (nodeName !== undefined) fail(`Cannot find device='${nodeName}' nor node-name='${nodeName}'`)
  if (h.incompatible & INCOMPAT_DATA_FILE) {
    const name = optName ?? h.dataFile
    if (name === undefined || name === '') fail('\'data-file\' is required for this image')
    return ctx.openFile(name, !ctx.readOnly)
  }
  if (h.autoclear & AUTOCLEAR_DATA_FILE_RAW) fail('data-file-raw requires a data file')
  if (optName !== undefined) fail('\'data-file\' can only be set for images with an external data file')
  return store
}
