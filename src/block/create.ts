// Creating an image file through its format's driver (create, convert, dd).
import { BlockError, QemuError } from '../cli/errors.js'
import { findFormat } from './registry.js'
import type { BlockDriver, CreateContext } from './types.js'

/** The driver for a target format, or qemu-img's refusal. */
export async function creatableDriver (format: string): Promise<BlockDriver> {
  const entry = findFormat(format)
  if (!entry) throw new QemuError(`Unknown file format '${format}'`)
  const driver = await entry.load()
  if (!driver.create) throw new QemuError(`Format driver '${format}' does not support image creation`)
  return driver
}

/** Create `filename`; failures carry the driver's message. */
export async function createImageFile (driver: BlockDriver, filename: string, options: Record<string, string>, ctx: CreateContext): Promise<void> {
  if (!driver.create) throw new BlockError(`Format driver '${driver.name}' does not support image creation`, 'ENOTSUP')
  await driver.create(filename, options, ctx)
}
