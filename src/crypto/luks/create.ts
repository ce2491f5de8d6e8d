// Building a new LUKS1 header as qemu-img 7.2 lays it out (for the
// standalone luks format and for qcow2's encrypt.format=luks alike):
//   header (592 bytes) | zeros to 4 KiB | 8 key slots, each
//   roundup(key bytes x 4000 stripes, 4 KiB) apart | payload
// Only slot 0 is filled; the others are disabled with zero salt and
// iterations and zero material. The payload offset is the end of slot 7.
// Defaults: aes-256, xts, plain64, sha256, iter-time 2000 ms.
import { randomBytes, randomUUID } from 'node:crypto'
import { BlockError } from '../../cli/errors.js'
import {
  CIPHER_MODES, HASH_ALGS, IVGEN_ALGS, QAPI_CIPHER_ALGS, findCipher, requireRunnable,
  type CipherMode, type HashAlg, type IvGenAlg,
} from '../algorithms.js'
import { SectorCipher, essivCipher, keyBytesFor, validateSpec } from '../sector-cipher.js'
import { afSplit } from './afsplit.js'
import {
  LUKS_DIGEST_LEN, LUKS_NUM_SLOTS, LUKS_SALT_LEN, LUKS_SECTOR, LUKS_SLOT_DISABLED, LUKS_SLOT_ENABLED,
  LUKS_STRIPES, encodeLuksHeader, type LuksHeader, type LuksKeySlot,
} from './header.js'
import { iterationsFor, pbkdf2Async } from './pbkdf.js'
import { luksModeString, type LuksSpec } from './spec.js'

export const DEFAULT_ITER_TIME = 2000

export { LUKS_ALGORITHM_OPTIONS } from './option-specs.js'
const SLOT_ALIGN = 4096

/** Creation options, in qemu's names and defaults (QCryptoBlockCreateOptionsLUKS). */
export interface LuksCreateOptions {
  cipherAlg?: string
  cipherMode?: string
  ivgenAlg?: string
  /** written into the mode string whenever given ("xts-plain64:sha1"), used by essiv only */
  ivgenHashAlg?: string
  hashAlg?: string
  /** milliseconds of PBKDF2 per key slot; a bigint for QAPI's full uint64 range */
  iterTime?: number | bigint
}

export interface LuksCreated {
  /** header and key material: write it at the start of the volume (qcow2: at the crypto extension's offset) */
  area: Buffer
  header: LuksHeader
  spec: LuksSpec
  masterKey: Buffer
  /** the payload cipher (sector numbers: from the payload start, or qcow2 host sectors) */
  cipher: SectorCipher
}

function enumValue<T extends string> (name: string, value: string | undefined, allowed: readonly string[]): T | undefined {
  if (value === undefined) return undefined
  if (!allowed.includes(value)) throw new BlockError(`Parameter '${name}' does not accept value '${value}'`, 'EINVAL')
  return value as T
}

/** Bytes between consecutive key slots for a key of `keyBytes`. */
export function slotStride (keyBytes: number): number {
  return Math.ceil(keyBytes * LUKS_STRIPES / SLOT_ALIGN) * SLOT_ALIGN
}

/** The key slot layout qemu uses for a key length: offsets in sectors, and the payload offset. */
export function luksLayout (keyBytes: number): { slotOffsets: number[], payloadOffset: number } {
  const stride = slotStride(keyBytes) / LUKS_SECTOR
  const first = SLOT_ALIGN / LUKS_SECTOR
  const slotOffsets = Array.from({ length: LUKS_NUM_SLOTS }, (_, i) => first + i * stride)
  return { slotOffsets, payloadOffset: first + LUKS_NUM_SLOTS * stride }
}

/** Resolve options to algorithms with qemu's checks and messages, in qemu's order. */
export function resolveLuksCreateSpec (o: LuksCreateOptions): LuksSpec {
  const algName = enumValue<string>('cipher-alg', o.cipherAlg, QAPI_CIPHER_ALGS) ?? 'aes-256'
  const mode = enumValue<CipherMode>('cipher-mode', o.cipherMode, CIPHER_MODES) ?? 'xts'
  const ivgen = enumValue<IvGenAlg>('ivgen-alg', o.ivgenAlg, IVGEN_ALGS) ?? 'plain64'
  const ivgenHash = enumValue<HashAlg>('ivgen-hash-alg', o.ivgenHashAlg, HASH_ALGS)
  const hash = enumValue<HashAlg>('hash-alg', o.hashAlg, HASH_ALGS) ?? 'sha256'
  const alg = findCipher(algName)
  if (!alg) throw new BlockError(`Algorithm '${algName}' not supported`, 'EINVAL')
  const spec: LuksSpec = { alg, mode, ivgen, ivgenHash: ivgen === 'essiv' ? ivgenHash ?? 'sha256' : undefined, hash }
  if (ivgen === 'essiv') essivCipher(alg, spec.ivgenHash!)
  validateSpec(spec)
  return spec
}

/** Bytes of header and key slots (the payload offset) a create with these options makes; checks as create does. */
export function luksAreaBytes (o: LuksCreateOptions): number {
  const spec = resolveLuksCreateSpec(o)
  return luksLayout(keyBytesFor(spec)).payloadOffset * LUKS_SECTOR
}

/** A key slot's fields and encrypted material for `password` holding `masterKey`. */
export async function makeKeySlot (spec: LuksSpec, masterKey: Buffer, password: Buffer, iterTime: number | bigint, keyOffset: number): Promise<{ slot: LuksKeySlot, material: Buffer }> {
  const iterations = iterationsFor(spec.hash, masterKey.length, iterTime)
  const salt = randomBytes(LUKS_SALT_LEN)
  const slotKey = await pbkdf2Async(password, salt, iterations, masterKey.length, spec.hash)
  const split = afSplit(masterKey, LUKS_STRIPES, spec.hash)
  // qemu 7.2 asserts when the material is not whole sectors (aes-192 outside xts); refuse instead
  if (split.length % LUKS_SECTOR !== 0) {
    throw new BlockError(`LUKS key material of ${split.length} bytes is not a whole number of sectors (${spec.alg.name}-${spec.mode} is unusable with qemu 7.2)`, 'EINVAL')
  }
  new SectorCipher(spec, slotKey).encrypt(split, 0)
  return { slot: { active: LUKS_SLOT_ENABLED, iterations, salt, keyOffset, stripes: LUKS_STRIPES }, material: split }
}

/** Create a LUKS1 header with `password` in key slot 0 and a fresh random master key. */
export async function createLuksHeader (password: Buffer, o: LuksCreateOptions = {}): Promise<LuksCreated> {
  const spec = resolveLuksCreateSpec(o)
  requireRunnable(spec.alg, [spec.hash, ...(spec.ivgenHash ? [spec.ivgenHash] : [])])
  const iterTime = o.iterTime ?? DEFAULT_ITER_TIME
  const keyBytes = keyBytesFor(spec)
  const masterKey = randomBytes(keyBytes)
  const { slotOffsets, payloadOffset } = luksLayout(keyBytes)

  // the master key digest gets an eighth of the time
  const mkDigestIter = iterationsFor(spec.hash, LUKS_DIGEST_LEN, typeof iterTime === 'bigint' ? iterTime / 8n : Math.floor(iterTime / 8))
  const mkDigestSalt = randomBytes(LUKS_SALT_LEN)
  const mkDigest = await pbkdf2Async(masterKey, mkDigestSalt, mkDigestIter, LUKS_DIGEST_LEN, spec.hash)
  const first = await makeKeySlot(spec, masterKey, password, iterTime, slotOffsets[0])

  const slots: LuksKeySlot[] = slotOffsets.map((keyOffset, i) => i === 0
    ? first.slot
    : { active: LUKS_SLOT_DISABLED, iterations: 0, salt: Buffer.alloc(LUKS_SALT_LEN), keyOffset, stripes: LUKS_STRIPES })
  const header: LuksHeader = {
    version: 1,
    cipherName: spec.alg.luksName,
    cipherMode: luksModeString(spec.mode, spec.ivgen, (o.ivgenHashAlg as HashAlg | undefined) ?? spec.ivgenHash),
    hashSpec: spec.hash,
    payloadOffset,
    keyBytes,
    mkDigest,
    mkDigestSalt,
    mkDigestIter,
    uuid: randomUUID(),
    slots,
  }
  const area = Buffer.alloc(payloadOffset * LUKS_SECTOR)
  encodeLuksHeader(header).copy(area, 0)
  first.material.copy(area, slotOffsets[0] * LUKS_SECTOR)
  return { area, header, spec, masterKey, cipher: new SectorCipher(spec, masterKey) }
}

/** Parse a QemuOpts number the way qemu does for iter-time/keyslot ("-1" wraps to 2^64-1). */
export function parseOptNumber (name: string, value: string): bigint {
  const m = /^\s*(-?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)\s*$/i.exec(value)
  if (!m) throw new BlockError(`Parameter '${name}' expects a number`, 'EINVAL')
  let v = BigInt(m[2].toLowerCase().startsWith('0x') ? m[2] : m[2].startsWith('0') && m[2].length > 1 ? '0o' + m[2].slice(1) : m[2])
  if (v > (1n << 64n) - 1n) throw new BlockError(`Parameter '${name}' expects a number`, 'EINVAL')
  if (m[1]) v = ((1n << 64n) - v) % (1n << 64n)
  return v
}

/**
 * LuksCreateOptions from -o values without their prefix (cipher-alg, ...,
 * iter-time); `prefix` is how the user spelled them ("encrypt." for qcow2),
 * for the number parse message.
 */
export function parseLuksCreateOptions (values: Record<string, string>, prefix = ''): LuksCreateOptions {
  const o: LuksCreateOptions = {
    cipherAlg: values['cipher-alg'],
    cipherMode: values['cipher-mode'],
    ivgenAlg: values['ivgen-alg'],
    ivgenHashAlg: values['ivgen-hash-alg'],
    hashAlg: values['hash-alg'],
  }
  if (values['iter-time'] !== undefined) o.iterTime = parseOptNumber(`${prefix}iter-time`, values['iter-time'])
  // the enum values are judged here too, before the caller looks up the secret (qemu's order)
  enumValue('cipher-alg', o.cipherAlg, QAPI_CIPHER_ALGS)
  enumValue('cipher-mode', o.cipherMode, CIPHER_MODES)
  enumValue('ivgen-alg', o.ivgenAlg, IVGEN_ALGS)
  enumValue('ivgen-hash-alg', o.ivgenHashAlg, HASH_ALGS)
  enumValue('hash-alg', o.hashAlg, HASH_ALGS)
  return o
}
