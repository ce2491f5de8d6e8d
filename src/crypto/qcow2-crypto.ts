// Encryption layers for qcow2: legacy AES (crypt_method 1) and LUKS
// (crypt_method 2). Observed from qemu 7.2:
// - LUKS: the LUKS header and key slots live inside the qcow2 file, at the
//   full disk encryption header extension's offset/length; data clusters
//   are encrypted per 512-byte sector with the IV from the *host* sector
//   number (byte offset in the data file / 512).
// - AES: AES-128-CBC, IV plain64 from the *guest* sector number, key = the
//   secret's first 16 bytes.
// - the secret comes from `encrypt.key-secret`; `encrypt.format` may name
//   the format and must then match the header; any other `encrypt.*` open
//   option is refused. `info` (noIO) opens without a secret.
import { BlockError } from '../cli/errors.js'
import type { ByteStore } from '../io/byte-store.js'
import type { OpenContext } from '../block/types.js'
import type { SecretStore } from '../block/secrets.js'
import type { ClusterCrypto } from '../formats/qcow2/crypto-api.js'
import { CRYPT_AES, type Qcow2Header } from '../formats/qcow2/header.js'
import { legacyAesCipher } from './aes-legacy.js'
import { passwordSecret } from './secret.js'
import type { SectorCipher } from './sector-cipher.js'
import { LuksVolume, regionIO } from './luks/volume.js'
import type { InfoObject } from './luks/info.js'
import { amendLuks, parseLuksAmendOptions } from './luks/amend.js'

const OPEN_OPTIONS = new Set(['format', 'key-secret'])

/** The `encrypt.*` options of an open, without the prefix. */
function encryptOptions (options: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(options)) if (k.startsWith('encrypt.')) out[k.slice(8)] = v
  return out
}

/**
 * For an unencrypted image: qemu refuses `encrypt.format` (other encrypt.*
 * options are ignored). Called by the qcow2 open path.
 */
export function checkUnencryptedOptions (options: Record<string, string>): void {
  const format = options['encrypt.format']
  if (format !== undefined) throw new BlockError(`No encryption in image header, but options specified format '${format}'`, 'EINVAL')
}

function secretFor (opts: Record<string, string>, ctx: OpenContext): Buffer {
  const id = opts['key-secret']
  if (id === undefined) throw new BlockError('Parameter \'encrypt.key-secret\' is required for cipher', 'EINVAL')
  return passwordSecret(ctx.secrets, id)
}

export class Qcow2Crypto implements ClusterCrypto {
  readonly sectorSize = 512

  constructor (
    readonly format: 'aes' | 'luks',
    private readonly cipher: SectorCipher | undefined,
    private readonly details: InfoObject,
    readonly luks?: LuksVolume,
  ) {}

  get canIO (): boolean { return this.cipher !== undefined }
  get physicalIV (): boolean { return this.format === 'luks' }

  info (): InfoObject {
    // a LUKS header changed by amend shows its new slots
    return { format: this.format, ...(this.luks ? this.luks.info() : this.details) }
  }

  private need (): SectorCipher {
    if (!this.cipher) throw new BlockError('Encrypted image was opened without its key', 'EACCES')
    return this.cipher
  }

  decrypt (buf: Buffer, sectorOffset: number): void {
    this.need().decrypt(buf, sectorOffset / this.sectorSize)
  }

  encrypt (buf: Buffer, sectorOffset: number): void {
    this.need().encrypt(buf, sectorOffset / this.sectorSize)
  }

  async amend (values: Record<string, string>, secrets: SecretStore, force: boolean): Promise<void> {
    if (!this.luks) throw new BlockError('Only LUKS encryption options can be amended', 'ENOTSUP')
    const o = parseLuksAmendOptions(values, secrets, 'encrypt.')
    await amendLuks(this.luks, o, force)
  }
}

export async function openQcow2Crypto (h: Qcow2Header, store: ByteStore, ctx: OpenContext): Promise<ClusterCrypto> {
  const format = h.cryptMethod === CRYPT_AES ? 'aes' : 'luks'
  const opts = encryptOptions(ctx.options)
  if (opts.format !== undefined && opts.format !== format) {
    throw new BlockError(`Header reported '${format}' encryption format but options specify '${opts.format}'`, 'EINVAL')
  }
  for (const k of Object.keys(opts)) {
    if (!OPEN_OPTIONS.has(k)) throw new BlockError(`Parameter '${k}' is unexpected`, 'EINVAL')
  }
  if (format === 'aes') {
    const cipher = ctx.noIO ? undefined : legacyAesCipher(secretFor(opts, ctx))
    return new Qcow2Crypto('aes', cipher, {})
  }
  const area = h.cryptoHeader
  // (qemu 7.2's info crashes here; opening for I/O gives this message)
  if (!area) throw new BlockError('Missing CRYPTO header for crypt method 2', 'EINVAL')
  const vol = await LuksVolume.open(regionIO((b, o) => store.read(b, o), area.offset, area.length, (b, o) => store.write(b, o)))
  if (!ctx.noIO) await vol.unlock(secretFor(opts, ctx))
  return new Qcow2Crypto('luks', vol.cipher, vol.info(), vol)
}

/**
 * `qemu-img amend -o encrypt.*` on a qcow2 image: `crypto` is the opened
 * image's layer (null when unencrypted); `values` are the encrypt.* options
 * without the prefix.
 */
export async function amendQcow2Encryption (crypto: ClusterCrypto | null, values: Record<string, string>, secrets: SecretStore, force: boolean): Promise<void> {
  if (!crypto) throw new BlockError('Can\'t amend encryption options - encryption not present', 'EINVAL')
  if (!crypto.amend) throw new BlockError('Only LUKS encryption options can be amended', 'ENOTSUP')
  await crypto.amend(values, secrets, force)
}
