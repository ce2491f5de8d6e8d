// Creating qcow2 images laid out exactly as qemu-img lays them out (see
// create-layout.ts for where clusters go): the header cluster with qemu's
// extensions, the refcount structures, L1/L2 tables, and the data area for
// preallocation.
import { promises as fsPromises } from 'node:fs'
import { BlockError } from '../../cli/errors.js'
import { isOn } from '../../cli/create-options.js'
import { allocateFirstBlock, checkFileOptions, createHostFile, preallocateFile } from '../../block/file-create.js'
import type { CreateContext } from '../../block/types.js'
import type { FileStore } from '../../io/file-store.js'
import {
  AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZLIB, COMPRESSION_ZSTD, CRYPT_AES, CRYPT_LUKS, CRYPT_NONE, EXT_CRYPTO,
  EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_FEATURE_TABLE, INCOMPAT_COMPRESSION, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2,
  V2_HEADER_LENGTH, V3_HEADER_LENGTH_WITH_COMPRESSION, encodeExtension, encodeHeader, writeU64, type Qcow2Header,
} from './header.js'
import { Geometry } from './layout.js'
import { encodeRefblock, planQcow2Layout, type Qcow2Layout } from './create-layout.js'
import { validateQcow2Options, type Qcow2CreateSpec } from './create-options.js'
import { MAX_L1_BYTES } from './refcount-math.js'
import { luksSetup } from './encryption-setup.js'
import { featureNameTable } from './header-write.js'

const COPIED = 0x80000000

/**
 * Cluster 0: header, extensions (backing format, data file, feature table
 * when it fits, end marker), then the backing file name.
 */
export function buildHeaderCluster (spec: Qcow2CreateSpec, layout: Qcow2Layout, luksLength = 0): Buffer {
  const cs = layout.clusterSize
  const v3 = spec.version >= 3
  const h: Qcow2Header = {
    version: spec.version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: spec.clusterBits,
    size: spec.size,
    cryptMethod: spec.encryption?.format === 'aes' ? CRYPT_AES : spec.encryption?.format === 'luks' ? CRYPT_LUKS : CRYPT_NONE,
    l1Size: layout.l1Size,
    l1TableOffset: layout.l1Cluster * cs,
    refcountTableOffset: layout.reftableCluster * cs,
    refcountTableClusters: layout.reftableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatible: 0n,
    compatible: spec.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0n,
    autoclear: spec.dataFileRaw ? AUTOCLEAR_DATA_FILE_RAW : 0n,
    refcountOrder: spec.refcountOrder,
    headerLength: v3 ? V3_HEADER_LENGTH_WITH_COMPRESSION : V2_HEADER_LENGTH,
    compressionType: spec.compressionType === 'zstd' ? COMPRESSION_ZSTD : COMPRESSION_ZLIB,
    extensions: [],
    featureNames: [],
  }
  if (spec.dataFile !== undefined) h.incompatible |= INCOMPAT_DATA_FILE
  if (spec.compressionType === 'zstd') h.incompatible |= INCOMPAT_COMPRESSION
  if (spec.extendedL2) h.incompatible |= INCOMPAT_EXTL2
  const exts: Buffer[] = []
  if (spec.backingFormat !== undefined) exts.push(encodeExtension(EXT_BACKING_FORMAT, Buffer.from(spec.backingFormat, 'utf8')))
  if (luksLength > 0) {
    const crypto = Buffer.alloc(16)
    writeU64(crypto, 0, layout.cryptoCluster * cs)
    writeU64(crypto, 8, luksLength)
    exts.push(encodeExtension(EXT_CRYPTO, crypto))
  }
  if (spec.dataFile !== undefined) exts.push(encodeExtension(EXT_DATA_FILE, Buffer.from(spec.dataFile, 'utf8')))
  const backing = spec.backingFile !== undefined ? Buffer.from(spec.backingFile, 'utf8') : Buffer.alloc(0)
  const fixedLen = h.headerLength + exts.reduce((n, e) => n + e.length, 0) + 8
  const features = v3 ? encodeExtension(EXT_FEATURE_TABLE, featureNameTable()) : Buffer.alloc(0)
  // the feature table is optional: qemu writes it only with clusters of 8 KiB or more (observed)
  if (v3 && cs >= 8192 && fixedLen + features.length + backing.length <= cs) exts.push(features)
  const extLen = exts.reduce((n, e) => n + e.length, 0)
  if (h.headerLength + extLen + 8 + backing.length > cs) throw new BlockError('Header extensions and backing file name do not fit in the first cluster', 'EFBIG')
  if (backing.length > 0) {
    h.backingFileOffset = h.headerLength + extLen + 8
    h.backingFileSize = backing.length
  }
  const buf = Buffer.alloc(cs)
  encodeHeader(h).copy(buf, 0)
  let pos = h.headerLength
  for (const e of exts) { e.copy(buf, pos); pos += e.length }
  pos += 8 // end of extensions
  backing.copy(buf, pos)
  return buf
}

/** The L1 table: one entry per L2 table (with the COPIED flag). */
function buildL1 (layout: Qcow2Layout, geo: Geometry): Buffer {
  const l1 = Buffer.alloc(layout.l1Size * 8)
  for (const run of layout.l2) {
    const i = Math.floor(run.firstGuestCluster / geo.l2Entries)
    writeU64(l1, i * 8, run.l2Cluster * layout.clusterSize)
    l1[i * 8] |= 0x80
  }
  return l1
}

function buildL2 (run: Qcow2Layout['l2'][number], geo: Geometry): Buffer {
  const cs = geo.clusterSize
  const l2 = Buffer.alloc(cs)
  const first = run.firstGuestCluster % geo.l2Entries
  for (let i = 0; i < run.count; i++) {
    const e = (first + i) * geo.l2EntrySize
    writeU64(l2, e, (run.hostCluster + i) * cs)
    l2.writeUInt32BE((l2.readUInt32BE(e) | COPIED) >>> 0, e)
  }
  return l2
}

function encodeReftable (entries: number[], clusters: number, cs: number): Buffer {
  const table = Buffer.alloc(clusters * cs)
  entries.forEach((c, i) => { if (c) writeU64(table, i * 8, c * cs) })
  return table
}

async function writeLayout (store: FileStore, spec: Qcow2CreateSpec, layout: Qcow2Layout, dataStore: FileStore | null, luksArea?: Buffer): Promise<void> {
  const cs = layout.clusterSize
  const geo = new Geometry(spec.clusterBits, spec.extendedL2)
  await store.write(buildHeaderCluster(spec, layout, luksArea?.length), 0)
  if (luksArea) {
    // the clusters are zeroed whole, then the header and key slots written
    const area = Buffer.alloc(Math.ceil(luksArea.length / cs) * cs)
    luksArea.copy(area)
    await store.write(area, layout.cryptoCluster * cs)
  }
  for (const stale of layout.staleTables) await store.write(encodeReftable(stale.entries, stale.clusters, cs), stale.cluster * cs)
  await store.write(encodeReftable(layout.reftable, layout.reftableClusters, cs), layout.reftableCluster * cs)
  for (const [i, block] of layout.refblocks) {
    const at = layout.reftable[i]
    if (at) await store.write(encodeRefblock(block, cs, spec.refcountOrder), at * cs)
  }
  if (layout.l1Size > 0) await store.write(buildL1(layout, geo), layout.l1Cluster * cs)
  for (const run of layout.l2) await store.write(buildL2(run, geo), run.l2Cluster * cs)
  const data = dataStore ?? store
  if (layout.fallocRange) await data.allocate(layout.fallocRange.offset, layout.fallocRange.length)
  for (const z of layout.zeroWrites) await preallocateFile(data, z.offset, z.offset + z.length, 'full')
  if (await store.size() < layout.fileLength) await store.truncate(layout.fileLength)
  if (dataStore) {
    const length = layout.dataFileLength ?? spec.size
    if (await dataStore.size() < length) await dataStore.truncate(length)
    await allocateFirstBlock(dataStore, length)
  }
}

export async function createQcow2 (filename: string, options: Record<string, string>, ctx: CreateContext): Promise<void> {
  const spec = validateQcow2Options(options)
  checkFileOptions(options)
  let luksArea: Buffer | undefined
  if (spec.encryption?.format === 'aes') ctx.secrets.get(spec.encryption.keySecret!) // qemu's message when the secret is unknown
  if (spec.encryption?.format === 'luks') {
    // the crypto layer checks the algorithms and the secret, and builds header and key slots
    const setup = await (await luksSetup()).prepareQcow2Encryption(options, ctx.secrets)
    luksArea = setup?.luksArea
  }
  const geo = new Geometry(spec.clusterBits, spec.extendedL2)
  let problem: string | undefined
  if (spec.size < 0) problem = 'Could not resize image: Image size cannot be negative'
  else if (Math.ceil(spec.size / geo.l2Coverage) * 8 > MAX_L1_BYTES) problem = 'The image size is too large for file format \'qcow2\' (try using a larger cluster size)'
  const nocow = isOn(options.nocow)
  // qemu creates the data file first, then the image; a failure removes the image
  let dataStore: FileStore | null = null
  // (the name is taken as given, relative to the working directory, as qemu-img create does)
  if (spec.dataFile !== undefined) dataStore = await createHostFile(spec.dataFile, { nocow })
  let store: FileStore | null = null
  try {
    store = await createHostFile(filename, { nocow })
  } catch (e) {
    await dataStore?.close()
    throw e // not ours to remove (a file another process uses, a missing directory)
  }
  try {
    if (problem) throw new BlockError(problem, 'EFBIG')
    const layout = planQcow2Layout({
      clusterBits: spec.clusterBits,
      refcountOrder: spec.refcountOrder,
      extendedL2: spec.extendedL2,
      size: spec.size,
      preallocation: spec.preallocation,
      externalData: dataStore !== null,
      cryptoClusters: luksArea ? Math.ceil(luksArea.length / 2 ** spec.clusterBits) : 0,
    })
    await writeLayout(store, spec, layout, dataStore, luksArea)
  } catch (e) {
    // qemu removes an image it could not finish
    await store.close().catch(() => undefined)
    store = null
    await fsPromises.unlink(filename).catch(() => undefined)
    throw e
  } finally {
    await store?.close()
    await dataStore?.close()
  }
}
