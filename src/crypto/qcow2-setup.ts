// Encryption for a new qcow2 image (`qemu-img create -f qcow2 -o
// encrypt.format=luks|aes,encrypt.key-secret=ID,...` or the deprecated
// `encryption=on`), with qemu-img 7.2's option rules and messages, in its
// order: number options, the format, unexpected options, the secret, then
// the algorithms.
//
// Use from qcow2 create:
//   const enc = await prepareQcow2Encryption(opts, ctx.secrets)
//   if (enc) { header.cryptMethod = enc.cryptMethod
//              if (enc.luksArea) { allocate ceil(len / cluster) clusters at OFF, write enc.luksArea there,
//                                  add the crypto header extension { offset: OFF, length: enc.luksArea.length } }
//              data clusters written later go through enc.crypto.encrypt (host offsets for LUKS) }
import { qemuBool } from '../cli/qemu-opts.js'
import { BlockError } from '../cli/errors.js'
import type { SecretStore } from '../block/secrets.js'
import type { CreateOptionSpec } from '../block/types.js'
import type { ClusterCrypto } from '../formats/qcow2/crypto-api.js'
import { CRYPT_AES, CRYPT_LUKS } from '../formats/qcow2/header.js'
import { legacyAesCipher } from './aes-legacy.js'
import { createLuksHeader, luksAreaBytes, parseLuksCreateOptions, type LuksCreateOptions } from './luks/create.js'
import { LuksVolume } from './luks/volume.js'
import { LUKS_AMEND_OPTIONS } from './luks/amend.js'
import { Qcow2Crypto } from './qcow2-crypto.js'
import { passwordSecret } from './secret.js'

export interface Qcow2EncryptionSetup {
  cryptMethod: typeof CRYPT_AES | typeof CRYPT_LUKS
  /** LUKS: header + key slots to store in the image, pointed at by the crypto header extension (length = area length) */
  luksArea?: Buffer
  /** en/decrypts data clusters of the new image */
  crypto: ClusterCrypto
}

/** The -o options qcow2 amend accepts for LUKS key slots, with qemu-img's help texts. */
export const QCOW2_ENCRYPT_AMEND_OPTIONS: CreateOptionSpec[] = LUKS_AMEND_OPTIONS.map(o => ({ ...o, name: `encrypt.${o.name}` }))

const AES_ALLOWED = new Set(['format', 'key-secret'])


interface ResolvedEncryption {
  format: 'aes' | 'luks'
  password: Buffer
  luks: LuksCreateOptions
}

/** qemu's checks of the encryption options, in its order; null when the image is not encrypted. */
function resolveQcow2Encryption (options: Record<string, string>, secrets: SecretStore): ResolvedEncryption | null {
  const values: Record<string, string> = {}
  for (const [k, v] of Object.entries(options)) if (k.startsWith('encrypt.')) values[k.slice(8)] = v
  // QemuOpts parses numbers before anything looks at the values
  const luksOpts = parseLuksCreateOptionsLazy(values)
  let format = values.format
  if (options.encryption !== undefined && qemuBool(options.encryption) === true) {
    if (format !== undefined) throw new BlockError('\'encrypt.format\' and its alias \'encryption\' can\'t be used at the same time', 'EINVAL')
    format = 'aes'
  }
  if (format === undefined) {
    if (Object.keys(values).length > 0) throw new BlockError('Parameter \'encrypt.format\' is missing', 'EINVAL')
    return null
  }
  if (format !== 'aes' && format !== 'luks') throw new BlockError(`Parameter 'format' does not accept value '${format}'`, 'EINVAL')
  if (format === 'aes') {
    for (const k of Object.keys(values)) {
      if (!AES_ALLOWED.has(k)) throw new BlockError(`Parameter 'encrypt.${k}' is unexpected`, 'EINVAL')
    }
  }
  const luks = luksOpts() // enum values are judged before the secret
  const id = values['key-secret']
  if (id === undefined) throw new BlockError('Parameter \'encrypt.key-secret\' is required for cipher', 'EINVAL')
  return { format, password: passwordSecret(secrets, id), luks }
}

/** Resolve the encryption options of a qcow2 create; null when the image is not encrypted. */
export async function prepareQcow2Encryption (options: Record<string, string>, secrets: SecretStore): Promise<Qcow2EncryptionSetup | null> {
  const r = resolveQcow2Encryption(options, secrets)
  if (!r) return null
  if (r.format === 'aes') {
    return { cryptMethod: CRYPT_AES, crypto: new Qcow2Crypto('aes', legacyAesCipher(r.password), {}) }
  }
  const made = await createLuksHeader(r.password, r.luks)
  const area = made.area
  const vol = await LuksVolume.open({ length: area.length, read: async (o, l) => Buffer.from(area.subarray(o, o + l)) })
  vol.useMasterKey(made.masterKey)
  return { cryptMethod: CRYPT_LUKS, luksArea: area, crypto: new Qcow2Crypto('luks', made.cipher, {}, vol) }
}

/**
 * For `measure`: the bytes of the LUKS area a qcow2 create with these
 * options would store (0 for AES or no encryption), with the same checks
 * and messages as create but no key derivation.
 */
export function qcow2EncryptionAreaBytes (options: Record<string, string>, secrets: SecretStore): number {
  const r = resolveQcow2Encryption(options, secrets)
  return r && r.format === 'luks' ? luksAreaBytes(r.luks) : 0
}

/** iter-time is parsed at once; the enum checks run when the returned function is called. */
function parseLuksCreateOptionsLazy (values: Record<string, string>) {
  if (values['iter-time'] !== undefined) parseLuksCreateOptions({ 'iter-time': values['iter-time'] }, 'encrypt.')
  return () => parseLuksCreateOptions(values, 'encrypt.')
}
