// `measure`: how much space an image of a given size, or a copy of an
// existing image, would take in an output format.
import { BlockError, QemuError, QemuErrorLines } from '../cli/errors.js'
import { parseCreateOptions } from '../cli/create-options.js'
import { findFormat } from '../block/registry.js'
import type { SecretStore } from '../block/secrets.js'
import type { Image, MeasureResult } from '../block/types.js'
import { createOptionList } from './create.js'

export interface MeasureRequest {
  /** --size (bytes) or an opened source image */
  size?: bigint
  source?: Image
  outFormat: string
  options?: string
  secrets: SecretStore
  warn(message: string): void
}

export async function measureImage (req: MeasureRequest): Promise<MeasureResult> {
  const entry = findFormat(req.outFormat)
  if (!entry) throw new QemuError(`Unknown file format '${req.outFormat}'`)
  const driver = await entry.load()
  if (!driver.measure) throw new QemuError(`Block driver '${req.outFormat}' does not support size measurement`)
  let opts: Record<string, string>
  try {
    opts = parseCreateOptions(req.options, createOptionList(driver), req.warn)
  } catch (e) {
    if (!(e instanceof QemuError)) throw e
    throw new QemuErrorLines([e.message, `Invalid options for file format '${req.outFormat}'`])
  }
  const size = req.source ? req.source.size : Number(req.size ?? 0n)
  try {
    return await driver.measure(opts, { size, source: req.source }, { secrets: req.secrets, warn: req.warn })
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(e.message)
    throw e
  }
}
