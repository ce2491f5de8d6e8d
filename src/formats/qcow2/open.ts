// Reading and validating a qcow2 image's metadata at open time. Every field is
// checked before it is used to size an allocation or a read, and refusals use
// qemu-img's wording.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import type { OpenContext } from '../../block/types.js'
import type { ClusterCrypto } from './crypto-api.js'
import {
  AUTOCLEAR_DATA_FILE_RAW, COMPRESSION_ZLIB, COMPRESSION_ZSTD, CRYPT_LUKS, CRYPT_NONE, HeaderError,
  INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, INCOMPAT_KNOWN,
  V2_HEADER_LENGTH, V3_HEADER_LENGTH, decodeExtensions, decodeHeader, type Qcow2Header,
} from './header.js'
import { Geometry } from './layout.js'
import { decodeSnapshots, SnapshotTableError, type Qcow2Snapshot } from './snapshots.js'

/** Limits qemu enforces (and that bound our allocations). */
export const MAX_L1_BYTES = 32 << 20
export const MAX_REFTABLE_BYTES = 8 << 20
export const MAX_SNAPSHOTS = 65536
export const MAX_BACKING_NAME = 1023

export interface Qcow2Metadata {
  header: Qcow2Header
  geo: Geometry
  l1: Buffer
  dataStore: ByteStore
  crypto: ClusterCrypto | null
  snapshots: Qcow2Snapshot[]
}

function fail (message: string, errno = 'EINVAL'): never {
  throw new BlockError(message, errno)
}

/**
 * qemu's table check: the table must fit the size limit and start at a
 * cluster boundary (the name is "Active L1 table", "Snapshot table", ...).
 */
export function validateTable (name: string, offset: number, entries: number, entryLen: number, maxBytes: number, clusterSize: number): void {
  if (entries > Math.floor(maxBytes / entryLen)) fail(`${name} too large`, 'EFBIG')
  const size = entries * entryLen
  if (!Number.isFinite(offset) || offset + size > 2 ** 63 - 1 || offset % clusterSize !== 0) fail(`${name} offset invalid`)
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

export async function readQcow2Metadata (store: ByteStore, ctx: OpenContext): Promise<Qcow2Metadata> {
  const fileSize = await store.size()
  const fixed = Buffer.alloc(V3_HEADER_LENGTH + 8)
  await store.read(fixed, 0)
  let header: Qcow2Header
  try {
    header = decodeHeader(fixed)
  } catch (e) {
    if (e instanceof HeaderError) fail(e.message)
    throw e
  }
  if (header.version < 2 || header.version > 3) fail(`Unsupported qcow2 version ${header.version}`, 'ENOTSUP')
  if (header.clusterBits < 9 || header.clusterBits > 21) fail(`Unsupported cluster size: 2^${header.clusterBits}`)
  const clusterSize = 2 ** header.clusterBits
  if (header.version >= 3) {
    if (header.headerLength < V3_HEADER_LENGTH) fail('qcow2 header too short')
    if (header.headerLength > clusterSize) fail('qcow2 header exceeds cluster size')
  } else {
    header.headerLength = V2_HEADER_LENGTH
  }
  if (header.backingFileOffset > clusterSize) fail('Invalid backing file offset')

  // the first cluster holds the header, its extensions and the backing file name
  const first = Buffer.alloc(clusterSize)
  await store.read(first, 0)
  if (header.version >= 3 && header.headerLength > V3_HEADER_LENGTH) header.compressionType = first[104]
  const extEnd = header.backingFileOffset > 0 ? header.backingFileOffset : clusterSize
  try {
    decodeExtensions(first, header, extEnd)
  } catch (e) {
    if (e instanceof HeaderError) fail(e.message)
    throw e
  }

  const unknownIncompat = header.incompatible & ~INCOMPAT_KNOWN
  if (unknownIncompat) fail(unsupportedFeatures(header, unknownIncompat), 'ENOTSUP')
  if ((header.incompatible & INCOMPAT_CORRUPT) && !ctx.readOnly) {
    fail('qcow2: Image is corrupt; cannot be opened read/write', 'EACCES')
  }
  if (header.refcountOrder > 6) fail('Reference count entry width too large; may not exceed 64 bits')

  // compression type: must agree with the incompatible bit
  if (header.compressionType !== COMPRESSION_ZLIB && header.compressionType !== COMPRESSION_ZSTD) {
    fail(`Unknown compression type '${header.compressionType}'`, 'ENOTSUP')
  }
  if (header.compressionType !== COMPRESSION_ZLIB && !(header.incompatible & INCOMPAT_COMPRESSION)) {
    fail('Compression type incompatible feature bit must be set if compression type is not zlib')
  }
  if (header.compressionType === COMPRESSION_ZLIB && (header.incompatible & INCOMPAT_COMPRESSION)) {
    fail('Compression type incompatible feature bit must not be set if compression type is zlib')
  }

  const extendedL2 = (header.incompatible & INCOMPAT_EXTL2) !== 0n
  if (extendedL2 && header.clusterBits < 14) {
    fail('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes')
  }
  const geo = new Geometry(header.clusterBits, extendedL2)

  if (header.cryptMethod > CRYPT_LUKS) fail(`Unsupported encryption method: ${header.cryptMethod}`)

  // refcount table
  if (header.refcountTableClusters === 0 && !(header.incompatible & INCOMPAT_CORRUPT)) {
    fail('Image does not contain a reference count table')
  }
  validateTable('Reference count table', header.refcountTableOffset, header.refcountTableClusters, clusterSize, MAX_REFTABLE_BYTES, clusterSize)

  // snapshots
  if (header.nbSnapshots > MAX_SNAPSHOTS) fail('Too many snapshots', 'EFBIG')
  validateTable('Snapshot table', header.snapshotsOffset, header.nbSnapshots, 40, Infinity, clusterSize)

  // L1 table
  validateTable('Active L1 table', header.l1TableOffset, header.l1Size, 8, MAX_L1_BYTES, clusterSize)
  if (!Number.isFinite(header.size) || header.size > 2 ** 63 - 1) fail('Image is too big', 'EFBIG')
  const needed = geo.l1EntriesFor(header.size)
  if (needed > 0x7fffffff) fail('Image is too big', 'EFBIG')
  if (header.l1Size < needed) fail('L1 table is too small')

  // backing file name
  if (header.backingFileOffset > 0) {
    if (header.backingFileSize > MAX_BACKING_NAME || header.backingFileSize > clusterSize - header.backingFileOffset) {
      fail('Backing file name too long')
    }
    header.backingFile = first.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize).toString('utf8')
  }

  const l1 = Buffer.alloc(header.l1Size * 8)
  if (header.l1Size > 0) await store.read(l1, header.l1TableOffset)

  const snapshots = await readSnapshots(store, header, fileSize)

  // external data file
  let dataStore: ByteStore = store
  if (header.incompatible & INCOMPAT_DATA_FILE) {
    const name = ctx.options['data-file'] ?? header.dataFile
    if (name === undefined || name === '') fail('\'data-file\' is required for this image')
    dataStore = await ctx.openFile(name, !ctx.readOnly)
  } else if (header.autoclear & AUTOCLEAR_DATA_FILE_RAW) {
    fail('data-file-raw requires a data file')
  } else if (ctx.options['data-file'] !== undefined) {
    fail('\'data-file\' can only be set for images with an external data file')
  }

  let crypto: ClusterCrypto | null = null
  if (header.cryptMethod !== CRYPT_NONE) {
    try {
      const { openQcow2Crypto } = await import('../../crypto/qcow2-crypto.js')
      crypto = await openQcow2Crypto(header, store, ctx)
    } catch (e) {
      if (dataStore !== store) await dataStore.close().catch(() => undefined)
      throw e
    }
  }
  return { header, geo, l1, dataStore, crypto, snapshots }
}

async function readSnapshots (store: ByteStore, header: Qcow2Header, fileSize: number): Promise<Qcow2Snapshot[]> {
  if (header.nbSnapshots === 0) return []
  // each entry is at most 40 + 64 KiB extra... bounded by the file itself
  const maxTable = Math.min(Math.max(fileSize - header.snapshotsOffset, 0), header.nbSnapshots * (40 + 0x10000 * 2 + 0xffffffff))
  let want = Math.min(header.nbSnapshots * 1024, maxTable)
  for (;;) {
    const buf = Buffer.alloc(want)
    await store.read(buf, header.snapshotsOffset)
    try {
      return decodeSnapshots(buf, header.nbSnapshots).snapshots
    } catch (e) {
      if (!(e instanceof SnapshotTableError)) throw e
      if (want >= maxTable) fail('Snapshot table is truncated') // cannot read more than the file holds
      want = Math.min(want * 4, maxTable)
    }
  }
}
