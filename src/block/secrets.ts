// Secrets given with --object secret,id=ID,data=...|file=...[,format=raw|base64]
// [,keyid=ID,iv=BASE64]: with keyid the data is AES-256-CBC ciphertext
// (PKCS#7 padded) under the 32-byte secret `keyid`, as libvirt passes them.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { QemuError } from '../cli/errors.js'

const BASE64_RANK = new Map([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]))

/**
 * Base64 as qemu decodes it: only alphabet characters and '=', then glib's
 * lenient decoder (an incomplete last group is dropped, '=' counts as zero
 * bits and trims the output at the end).
 */
export function decodeBase64 (text: string): Buffer {
  if (/[^A-Za-z0-9+/=]/.test(text)) throw new QemuError('Base64 data contains invalid characters')
  const out: number[] = []
  for (let i = 0; i + 4 <= text.length; i += 4) {
    const q = text.slice(i, i + 4)
    const v = [...q].reduce((acc, c) => (acc << 6) | (BASE64_RANK.get(c) ?? 0), 0)
    out.push((v >> 16) & 255, (v >> 8) & 255, v & 255)
  }
  const full = text.slice(0, text.length - (text.length % 4))
  const pad = full.endsWith('==') ? 2 : full.endsWith('=') ? 1 : 0
  return Buffer.from(out.slice(0, out.length - pad))
}

export class SecretStore {
  private readonly secrets = new Map<string, Buffer>()

  add (id: string, value: Buffer): void { this.secrets.set(id, value) }

  has (id: string): boolean { return this.secrets.has(id) }

  /** The secret's bytes; qemu's wording when the id is unknown. */
  get (id: string): Buffer {
    const s = this.secrets.get(id)
    if (!s) throw new QemuError(`No secret with id '${id}'`)
    return s
  }

  /** Add a secret from --object properties (already split into a record). */
  addFromProperties (props: Record<string, string>): void {
    const id = props.id
    if (!id) throw new QemuError('Parameter \'id\' is missing')
    if (this.secrets.has(id)) throw new QemuError(`attempt to add duplicate property '${id}' to object (type 'container')`)
    if (props.data !== undefined && props.file !== undefined) {
      throw new QemuError('\'file\' and \'data\' are mutually exclusive')
    }
    let raw: Buffer
    if (props.data !== undefined) {
      raw = Buffer.from(props.data, 'utf8')
    } else if (props.file !== undefined) {
      try {
        raw = readFileSync(props.file)
      } catch (e) {
        throw new QemuError(`Unable to read ${props.file}: Failed to open file “${props.file}”: ${(e as Error).message.replace(/^[A-Z]+: /, '').replace(/, open .*$/, '')}`)
      }
    } else {
      throw new QemuError('Either \'file\' or \'data\' must be provided')
    }
    const format = props.format ?? 'raw'
    if (format !== 'raw' && format !== 'base64') throw new QemuError(`Parameter 'format' does not accept value '${format}'`)
    const decode = (b: Buffer): Buffer => format === 'base64' ? decodeBase64(b.toString('latin1')) : b
    this.add(id, props.keyid !== undefined ? this.decrypt(props.keyid, props.iv, raw, decode) : decode(raw))
  }

  /** Decrypt an encrypted secret's data with qemu's checks, in its order. */
  private decrypt (keyid: string, ivText: string | undefined, raw: Buffer, decode: (b: Buffer) => Buffer): Buffer {
    const key = this.get(keyid)
    if (key.length !== 32) throw new QemuError('Key should be 32 bytes in length')
    if (ivText === undefined) throw new QemuError('IV is required to decrypt secret')
    const iv = decodeBase64(ivText)
    if (iv.length !== 16) throw new QemuError(`IV should be 16 bytes in length not ${iv.length}`)
    const data = decode(raw)
    if (data.length % 16 !== 0) throw new QemuError(`Length ${data.length} must be a multiple of block size 16`)
    if (data.length === 0) return data
    // node:crypto is loaded only here: every command makes a SecretStore, few decrypt secrets
    const { createDecipheriv } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')
    const d = createDecipheriv('aes-256-cbc', key, iv).setAutoPadding(false)
    const plain = Buffer.concat([d.update(data), d.final()])
    const pad = plain[plain.length - 1]
    if (pad > 16) throw new QemuError(`Incorrect number of padding bytes (${pad}) found on decrypted data`)
    return plain.subarray(0, plain.length - pad)
  }
}
