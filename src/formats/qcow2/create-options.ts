// qcow2's -o options and their validation, in the order qemu checks them
// (observed: the option conversion first, then the create checks).
import { BlockError } from '../../cli/errors.js'
import type { CreateOptionSpec, Preallocation } from '../../block/types.js'
import { isOn } from '../../cli/create-options.js'

export { QCOW2_CREATE_OPTIONS } from './option-specs.js'

export type Qcow2Encryption = { format: 'aes', keySecret?: string } | { format: 'luks', keySecret?: string, options: Record<string, string> }

/** Everything create needs, validated. */
export interface Qcow2CreateSpec {
  size: number
  version: 2 | 3
  clusterBits: number
  refcountOrder: number
  extendedL2: boolean
  lazyRefcounts: boolean
  compressionType: 'zlib' | 'zstd'
  preallocation: Preallocation
  backingFile?: string
  backingFormat?: string
  dataFile?: string
  dataFileRaw: boolean
  encryption?: Qcow2Encryption
}

function fail (message: string): never {
  throw new BlockError(message, 'EINVAL')
}

const LUKS_KEYS = ['encrypt.cipher-alg', 'encrypt.cipher-mode', 'encrypt.ivgen-alg', 'encrypt.ivgen-hash-alg', 'encrypt.hash-alg', 'encrypt.iter-time']

function encryptionOf (o: Record<string, string>): Qcow2Encryption | undefined {
  if (o.encryption !== undefined && o['encrypt.format'] !== undefined) {
    fail('\'encrypt.format\' and its alias \'encryption\' can\'t be used at the same time')
  }
  let format = o['encrypt.format']
  if (format === undefined && isOn(o.encryption)) format = 'aes'
  const keySecret = o['encrypt.key-secret']
  if (format === undefined) {
    const given = ['encrypt.key-secret', ...LUKS_KEYS].filter(k => o[k] !== undefined)
    if (given.length > 0) fail('Parameter \'encrypt.format\' is missing')
    return undefined
  }
  if (format === 'aes') {
    const extra = LUKS_KEYS.find(k => o[k] !== undefined)
    if (extra) fail(`Parameter '${extra}' is unexpected`)
    return { format: 'aes', keySecret }
  }
  if (format === 'luks') {
    const options: Record<string, string> = {}
    for (const k of LUKS_KEYS) if (o[k] !== undefined) options[k.slice('encrypt.'.length)] = o[k]
    return { format: 'luks', keySecret, options }
  }
  return fail(`Parameter 'format' does not accept value '${format}'`)
}

/**
 * The guest size rounded up to a sector, exact as a number (a multiple of
 * 512 below 2^62 is). -1 when it does not fit in a signed 64-bit value, which
 * qemu reports once the file exists.
 */
function sizeOf (text: string | undefined): number {
  const v = BigInt(text ?? '0')
  const rounded = (v + 511n) / 512n * 512n
  return v < 0n || rounded > (1n << 63n) - 1n ? -1 : Number(rounded)
}

const V3_HINT = ' only supported with compatibility level 1.1 and above (use version=v3 or greater)'

/** Check -o values as qemu does and turn them into a create spec. */
export function validateQcow2Options (o: Record<string, string>): Qcow2CreateSpec {
  // the conversion of the options (QAPI field order)
  let version: 2 | 3 = 3
  if (o.compat !== undefined) {
    if (o.compat === '0.10' || o.compat === 'v2') version = 2
    else if (o.compat === '1.1' || o.compat === 'v3') version = 3
    else fail(`Parameter 'version' does not accept value '${o.compat}'`)
  }
  const encryption = encryptionOf(o)
  const preallocation = (o.preallocation ?? 'off') as Preallocation
  if (!['off', 'metadata', 'falloc', 'full'].includes(preallocation)) {
    fail(`Parameter 'preallocation' does not accept value '${preallocation}'`)
  }
  const compressionType = o.compression_type ?? 'zlib'
  if (compressionType !== 'zlib' && compressionType !== 'zstd') {
    fail(`Parameter 'compression-type' does not accept value '${compressionType}'`)
  }

  // the create checks
  const clusterSize = Number(o.cluster_size ?? '65536')
  const clusterBits = Math.log2(clusterSize)
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    fail('Cluster size must be a power of two between 512 and 2048k')
  }
  const extendedL2 = isOn(o.extended_l2)
  if (extendedL2) {
    if (version < 3) fail('Extended L2 entries are' + V3_HINT)
    if (clusterBits < 14) fail('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes')
  }
  const lazyRefcounts = isOn(o.lazy_refcounts)
  if (lazyRefcounts && version < 3) fail('Lazy refcounts' + V3_HINT)
  const refcountBits = BigInt(o.refcount_bits ?? '16')
  if (refcountBits <= 0n || refcountBits > 64n || (refcountBits & (refcountBits - 1n)) !== 0n) {
    fail('Refcount width must be a power of two and may not exceed 64 bits')
  }
  if (version < 3 && refcountBits !== 16n) {
    fail('Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)')
  }
  const backingFile = o.backing_file
  const backingFormat = o.backing_fmt
  if (backingFormat !== undefined && backingFile === undefined) fail('Backing format cannot be used without backing file')
  const dataFile = o.data_file
  const dataFileRaw = isOn(o.data_file_raw)
  if (dataFile !== undefined && version < 3) fail('External data files are' + V3_HINT)
  if (dataFileRaw && dataFile === undefined) fail('data-file-raw requires data-file')
  if (dataFileRaw && backingFile !== undefined) fail('Backing file and data-file-raw cannot be used at the same time')
  if (compressionType !== 'zlib' && version < 3) fail('Non-zlib compression type is' + V3_HINT)
  if (backingFile !== undefined && preallocation !== 'off' && !extendedL2) {
    fail('Backing file and preallocation can only be used at the same time if extended_l2 is on')
  }
  if (encryption && encryption.keySecret === undefined) fail('Parameter \'encrypt.key-secret\' is required for cipher')
  return {
    size: sizeOf(o.size),
    version,
    clusterBits,
    refcountOrder: Math.log2(Number(refcountBits)),
    extendedL2,
    lazyRefcounts,
    compressionType,
    preallocation,
    backingFile,
    backingFormat,
    dataFile,
    dataFileRaw,
    encryption,
  }
}
