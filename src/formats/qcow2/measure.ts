// `measure -O qcow2`: metadata for a fully allocated image of the size
// (header, every L2 table, L1, refcounts for all of it), plus the data the
// source really has, counted in output clusters.
import { BlockError } from '../../cli/errors.js'
import { isOn } from '../../cli/create-options.js'
import { WIDE_STATUS, type CreateContext, type Image, type MeasureInput, type MeasureResult } from '../../block/types.js'
import { Geometry } from './layout.js'
import { fullyAllocatedLayout, l1EntriesFor, MAX_L1_BYTES } from './refcount-math.js'
import { luksSetup } from './encryption-setup.js'
import { AUTOCLEAR_BITMAPS, readU64, type Qcow2Header } from './header.js'

function fail (message: string): never {
  throw new BlockError(message, 'EINVAL')
}

/**
 * Bytes of the source that hold data, each run rounded out to whole output
 * clusters. Status answers may run across L2 tables (`wide`): two data runs
 * side by side count the same as one, since a run's count ends where the
 * next query starts.
 */
export async function allocatedDataBytes (img: Image, size: number, clusterSize: number): Promise<number> {
  let required = 0
  let offset = 0
  while (offset < size) {
    const ext = await img.blockStatus(offset, size - offset, WIDE_STATUS)
    let len = ext.length
    if (ext.kind === 'data' && !ext.zero) {
      // count from the start of the cluster to the end of the last one touched
      len = Math.ceil((offset + len) / clusterSize) * clusterSize - offset
      required += (offset % clusterSize) + len
    }
    offset += len
  }
  return required
}

/** Space the source's persistent bitmaps would take in a qcow2 image with `clusterSize` clusters. */
async function bitmapsBytes (img: Image, clusterSize: number): Promise<number> {
  const header = (img as Image & { header?: Qcow2Header }).header
  const ext = header?.bitmapsExt
  if (!header || !ext || !(header.autoclear & AUTOCLEAR_BITMAPS) || ext.nbBitmaps === 0) return 0
  if (ext.directorySize > 64 << 20) return 0
  const dir = Buffer.alloc(ext.directorySize)
  await img.store.read(dir, ext.directoryOffset)
  const roundUp = (n: number): number => Math.ceil(n / clusterSize) * clusterSize
  let total = 0
  let dirBytes = 0
  let pos = 0
  for (let i = 0; i < ext.nbBitmaps && pos + 24 <= dir.length; i++) {
    const granularityBits = dir[pos + 17]
    const nameSize = dir.readUInt16BE(pos + 18)
    const extraSize = dir.readUInt32BE(pos + 20)
    const entry = Math.ceil((24 + extraSize + nameSize) / 8) * 8
    const bits = Math.ceil(img.size / 2 ** granularityBits)
    const dataClusters = Math.ceil(Math.ceil(bits / 8) / clusterSize)
    total += dataClusters * clusterSize + roundUp(dataClusters * 8)
    dirBytes += entry
    pos += entry
  }
  return total + roundUp(dirBytes)
}

export async function measureQcow2 (o: Record<string, string>, input: MeasureInput, ctx: CreateContext): Promise<MeasureResult> {
  const clusterSize = Number(o.cluster_size ?? '65536')
  const clusterBits = Math.log2(clusterSize)
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    fail('Cluster size must be a power of two between 512 and 2048k')
  }
  const extendedL2 = isOn(o.extended_l2)
  if (extendedL2 && clusterBits < 14) fail('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes')
  const refcountBits = BigInt(o.refcount_bits ?? '16')
  if (refcountBits <= 0n || refcountBits > 64n || (refcountBits & (refcountBits - 1n)) !== 0n) {
    fail('Refcount width must be a power of two and may not exceed 64 bits')
  }
  const prealloc = o.preallocation ?? 'off'
  if (!['off', 'metadata', 'falloc', 'full'].includes(prealloc)) fail(`invalid parameter value: ${prealloc}`)
  let luks = 0
  if (o['encrypt.format'] === 'luks') {
    // room for the LUKS header and key slots, with create's checks of the options and the secret
    luks = (await luksSetup()).qcow2EncryptionAreaBytes(o, ctx.secrets)
  }
  const geo = new Geometry(clusterBits, extendedL2)
  if (l1EntriesFor(input.size, geo) * 8 > MAX_L1_BYTES) fail('The image size is too large (try using a larger cluster size)')
  const { meta, data } = fullyAllocatedLayout(input.size, geo, Math.log2(Number(refcountBits)), luks)
  let required = meta
  if (prealloc === 'falloc' || prealloc === 'full') required += data
  else if (input.source) required += await allocatedDataBytes(input.source, input.size, clusterSize)
  const result: MeasureResult = { required, fullyAllocated: meta + data }
  if (input.source?.format === 'qcow2') result.bitmaps = await bitmapsBytes(input.source, clusterSize)
  return result
}
