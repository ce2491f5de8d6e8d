// Secrets given with --object secret,id=ID,data=...|file=...[,format=raw|base64].
import fs from 'node:fs'
import { QemuError } from '../cli/errors.js'

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
    if (props.data !== undefined && props.file !== undefined) {
      throw new QemuError('\'data\' and \'file\' are mutually exclusive')
    }
    if (props.keyid !== undefined || props.iv !== undefined) {
      throw new QemuError('secret objects encrypted with keyid/iv are not supported by qimg')
    }
    let raw: Buffer
    if (props.data !== undefined) {
      raw = Buffer.from(props.data, 'utf8')
    } else if (props.file !== undefined) {
      try {
        raw = fs.readFileSync(props.file)
      } catch (e) {
        throw new QemuError(`Unable to read ${props.file}: Failed to open file “${props.file}”: ${(e as Error).message.replace(/^[A-Z]+: /, '').replace(/, open .*$/, '')}`)
      }
    } else {
      throw new QemuError('Either \'file\' or \'data\' must be provided')
    }
    const format = props.format ?? 'raw'
    if (format === 'base64') {
      const text = raw.toString('utf8')
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
        throw new QemuError('Unable to decode base64 data')
      }
      raw = Buffer.from(text, 'base64')
    } else if (format !== 'raw') {
      throw new QemuError(`Parameter 'format' does not accept value '${format}'`)
    }
    this.add(id, raw)
  }
}
