// Options shared by commands that open images: -f, --image-opts, --object,
// -U, and the conversion of an opening failure into qemu-img's message.
import { BlockError, QemuError } from './errors.js'
import { parseKeyValues, toRecord } from './qemu-opts.js'
import { SecretStore } from '../block/secrets.js'
import { openImage, parseImageOpts, type OpenImageOptions } from '../block/open.js'
import type { Image } from '../block/types.js'
import { err } from './output.js'
import { programName } from './program.js'

/** qemu's warnings: some printed as they are, some after the program name */
function warning (message: string, prefixed?: boolean): void {
  err(prefixed ? `${programName()}: ${message}` : message)
}

/** Parse --object arguments (only secrets are meaningful to qemu-img). */
export function secretsFromObjects (objects: string[]): SecretStore {
  const store = new SecretStore()
  for (const text of objects) {
    let props: Record<string, string>
    if (text.trim().startsWith('{')) {
      let j: Record<string, unknown>
      try { j = JSON.parse(text) as Record<string, unknown> } catch { throw new QemuError(`Invalid JSON object given to --object`) }
      props = Object.fromEntries(Object.entries(j).map(([k, v]) => [k === 'qom-type' ? 'qom-type' : k, String(v)]))
    } else {
      props = toRecord(parseKeyValues(text, 'qom-type'))
    }
    const type = props['qom-type']
    if (type === 'help') throw new QemuError('List of user creatable objects: secret')
    if (type !== 'secret') throw new QemuError(`Parameter 'qom-type' does not accept value '${type}'`)
    store.addFromProperties(props)
  }
  return store
}

export interface ImageSpec {
  /** the filename, or the --image-opts string */
  name: string
  format?: string
  imageOpts?: boolean
}

/**
 * Open an image as qemu-img's commands do; failures become
 * "Could not open 'NAME': reason".
 */
export async function openForCommand (spec: ImageSpec, opts: OpenImageOptions): Promise<Image> {
  let filename = spec.name
  let format = spec.format
  let options = opts.options
  try {
    if (spec.imageOpts) {
      if (format !== undefined) throw new QemuError('--image-opts and --format are mutually exclusive')
      const parsed = parseImageOpts(spec.name)
      filename = parsed.filename
      format = parsed.format
      options = { ...parsed.options, ...options }
    }
    return await openImage(filename, { onWarning: warning, ...opts, format, options })
  } catch (e) {
    // qemu names the image by what was given: the whole option string with --image-opts
    if (e instanceof BlockError) throw new QemuError(`Could not open '${spec.name}': ${e.message}`)
    throw e
  }
}
