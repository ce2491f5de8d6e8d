// The standalone luks format: a LUKS1 header and key slots, then the
// payload, encrypted per 512-byte sector with sector numbers counted from
// the payload start. As qemu 7.2: the guest size is the file size past the
// payload offset (rounded up to a sector), `info` opens without a secret,
// everything else needs `key-secret`; block status reports the whole disk
// as data (nothing is known about unwritten sectors: they decrypt to noise).
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import { ImageBase } from '../../block/image.js'
import { Mutex } from '../../block/mutex.js'
import type {
  BlockDriver, CreateContext, CreateOptionSpec, ImageDetails, LayerStatus, OpenContext, Preallocation, WriteZeroesOptions,
} from '../../block/types.js'
import { FileStore } from '../../io/file-store.js'
import { LuksVolume, regionIO } from '../../crypto/luks/volume.js'
import { passwordSecret } from '../../crypto/secret.js'
import { LUKS_ALGORITHM_OPTIONS } from '../../crypto/luks/option-specs.js'
import { LUKS_AMEND_OPTIONS } from '../../crypto/luks/amend.js'
import type { SecretStore } from '../../block/secrets.js'

const SECTOR = 512
/** open options the luks driver takes besides the generic block layer ones */
const GENERIC_OPTIONS = new Set(['read-only', 'auto-read-only', 'discard', 'detect-zeroes', 'force-share', 'node-name'])

function passwordFor (options: Record<string, string>, secrets: SecretStore): Buffer {
  const id = options['key-secret']
  if (id === undefined) throw new BlockError('Parameter \'key-secret\' is required for cipher', 'EINVAL')
  return passwordSecret(secrets, id)
}

export class LuksImage extends ImageBase {
  readonly format = 'luks'

  constructor (filename: string, store: ByteStore, size: number, readOnly: boolean, readonly volume: LuksVolume) {
    super(filename, store, size, readOnly)
  }

  private get base (): number { return this.volume.payloadOffset }

  private cipher () {
    const c = this.volume.cipher
    if (!c) throw new BlockError('Encrypted image was opened without its key', 'EACCES')
    return c
  }

  async layerStatus (offset: number, length: number): Promise<LayerStatus> {
    return { kind: 'data', length: Math.max(Math.min(length, this.size - offset), 0) }
  }

  protected async readData (buf: Buffer, offset: number): Promise<void> {
    const cipher = this.cipher()
    const start = offset - (offset % SECTOR)
    const end = Math.ceil((offset + buf.length) / SECTOR) * SECTOR
    if (start === offset && end === offset + buf.length) {
      await this.store.read(buf, this.base + offset)
      cipher.decrypt(buf, offset / SECTOR)
      return
    }
    const tmp = Buffer.alloc(end - start)
    await this.store.read(tmp, this.base + start)
    cipher.decrypt(tmp, start / SECTOR)
    tmp.copy(buf, 0, offset - start, offset - start + buf.length)
  }

  override async write (buf: Buffer, offset: number): Promise<void> {
    this.checkWritable()
    this.checkRange(offset, buf.length)
    // one write at a time: a partial sector's read-modify-write must not interleave with another write to it
    await this.writeLock.run(() => this.writeSectors(buf, offset))
  }

  private readonly writeLock = new Mutex()

  private async writeSectors (buf: Buffer, offset: number): Promise<void> {
    const cipher = this.cipher()
    const start = offset - (offset % SECTOR)
    const end = Math.ceil((offset + buf.length) / SECTOR) * SECTOR
    const tmp = Buffer.alloc(end - start)
    if (start !== offset || end !== offset + buf.length) {
      // partial sectors: read-modify-write the sectors at both ends
      await this.readData(tmp.subarray(0, SECTOR), start)
      if (end - SECTOR > start) await this.readData(tmp.subarray(tmp.length - SECTOR), end - SECTOR)
    }
    buf.copy(tmp, offset - start)
    cipher.encrypt(tmp, start / SECTOR)
    await this.store.write(tmp, this.base + start)
  }

  override async writeZeroes (offset: number, length: number, _opts?: WriteZeroesOptions): Promise<void> {
    // zeros must be encrypted like any data: no holes in an encrypted payload
    this.checkWritable()
    this.checkRange(offset, length)
    const chunk = Buffer.alloc(Math.min(length, 1 << 20))
    for (let pos = offset; pos < offset + length; pos += chunk.length) {
      await this.write(chunk.subarray(0, Math.min(chunk.length, offset + length - pos)), pos)
    }
  }

  override async details (): Promise<ImageDetails> {
    return { encrypted: true, formatSpecific: { type: 'luks', data: this.volume.info() } }
  }

  async resize (size: number, _opts: { preallocation?: Preallocation, shrink?: boolean }): Promise<void> {
    this.checkWritable()
    await this.store.truncate(this.base + size)
    this.size = size
  }

  /** amend -o state=...,keyslot=...,new-secret=...,old-secret=...,iter-time=... (secrets from the open's --object list) */
  async amend (options: Record<string, string>, opts: { force: boolean }): Promise<void> {
    const { amendLuks, parseLuksAmendOptions } = await import('../../crypto/luks/amend.js')
    await amendLuks(this.volume, parseLuksAmendOptions(options, this.secrets), opts.force)
  }

  /** the secrets the image was opened with: amend's new/old secrets come from the same --object list */
  secrets!: SecretStore
}

/**
 * The format's own options (`-o help` without a file name; the file protocol
 * adds nocow and preallocation), in qemu's definition order: the order of
 * the "Formatting" line.
 */
export const LUKS_CREATE_OPTIONS: CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'key-secret', type: 'string', help: 'ID of the secret that provides the keyslot passphrase' },
  ...LUKS_ALGORITHM_OPTIONS,
]

export const luksDriver: BlockDriver = {
  name: 'luks',
  createOptions: LUKS_CREATE_OPTIONS,
  amendOptions: LUKS_AMEND_OPTIONS,
  // unwritten payload decrypts to noise: convert writes zeros explicitly
  noZeroInit: true,

  async open (store: ByteStore, ctx: OpenContext) {
    for (const k of Object.keys(ctx.options)) {
      if (k !== 'key-secret' && !GENERIC_OPTIONS.has(k)) throw new BlockError(`Block format 'luks' does not support the option '${k}'`, 'EINVAL')
    }
    const fileSize = await store.size()
    const vol = await LuksVolume.open(regionIO((b, o) => store.read(b, o), 0, Infinity, (b, o) => store.write(b, o)))
    if (!ctx.noIO) await vol.unlock(passwordFor(ctx.options, ctx.secrets))
    const size = Math.max(Math.ceil((fileSize - vol.payloadOffset) / SECTOR) * SECTOR, 0)
    const img = new LuksImage(ctx.filename, store, size, ctx.readOnly, vol)
    img.secrets = ctx.secrets
    return img
  },

  async create (filename: string, options: Record<string, string>, ctx: CreateContext) {
    const { createLuksHeader, parseLuksCreateOptions } = await import('../../crypto/luks/create.js')
    const opts = parseLuksCreateOptions(options)
    const password = passwordFor(options, ctx.secrets)
    const size = Number(options.size ?? 0)
    // the file protocol's preallocation (of the whole file, as qemu; metadata means nothing here)
    const prealloc = options.preallocation ?? 'off'
    if (!['off', 'metadata', 'falloc', 'full'].includes(prealloc)) throw new BlockError(`invalid parameter value: ${prealloc}`, 'EINVAL')
    const made = await createLuksHeader(password, opts)
    const store = await FileStore.open(filename, { writable: true, create: true, truncate: true })
    try {
      await store.write(made.area, 0)
      await store.truncate(made.area.length + size)
      if (prealloc === 'falloc' || prealloc === 'full') await store.allocate(0, made.area.length + size)
      await store.flush()
    } finally {
      await store.close()
    }
  },
}
