// `amend`: change the options of an existing image. The -o string is parsed
// against the format's amend options (with qemu-img's hint when an option
// exists only for creation); the format applies the values.
import { BlockError, QemuError } from '../cli/errors.js'
import { parseCreateOptions } from '../cli/create-options.js'
import type { SecretStore } from '../block/secrets.js'
import type { BlockDriver, Image } from '../block/types.js'

/** The -o values for amending with `driver`, or qemu-img's refusal. */
export function parseAmendOptions (driver: BlockDriver, text: string, warn: (m: string) => void): Record<string, string> {
  if (!driver.amendOptions) throw new QemuError(`Format driver '${driver.name}' does not support option amendment`)
  try {
    return parseCreateOptions(text, driver.amendOptions, warn)
  } catch (e) {
    if (!(e instanceof QemuError) || !e.message.startsWith('Invalid parameter') || !driver.createOptions) throw e
    try {
      parseCreateOptions(text, driver.createOptions)
    } catch {
      throw e
    }
    throw new QemuError(`${e.message}\nThis option is only supported for image creation`)
  }
}

export interface AmendRequest {
  options: Record<string, string>
  force: boolean
  secrets: SecretStore
  /** percentages as qemu-img prints them (single-precision floats) */
  onProgress?: (percent: number) => void
}

export async function amendImage (img: Image, req: AmendRequest): Promise<void> {
  if (!img.amend) throw new QemuError(`Format driver '${img.format}' does not support option amendment`)
  const f32 = Math.fround
  const progress = req.onProgress
    ? (done: number, total: number) => req.onProgress!(f32(f32(f32(100) * f32(done)) / f32(total)))
    : undefined
  try {
    await img.amend(req.options, { force: req.force, secrets: req.secrets, progress })
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(e.message)
    throw e
  }
}
