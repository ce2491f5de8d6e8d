// `create`: validate the request as qemu-img does (bdrv_img_create), describe
// it (the "Formatting" line, through a callback) and let the format create
// the file. Errors after the format is known carry the "NAME: " prefix.
import { BlockError, QemuError } from '../cli/errors.js'
import { describeCreateOptions, mergeOptionSpecs, parseCreateOptions, setCreateOption } from '../cli/create-options.js'
import { findFormat } from '../block/registry.js'
import { openImage } from '../block/open.js'
import { resolveRelative } from '../block/paths.js'
import { FILE_CREATE_OPTIONS } from '../block/file-create.js'
import type { SecretStore } from '../block/secrets.js'
import type { BlockDriver, CreateOptionSpec } from '../block/types.js'

export interface CreateRequest {
  filename: string
  format: string
  /** accumulated -o string */
  options?: string
  /** size in bytes from the command line (already parsed) */
  size?: bigint
  backingFile?: string
  backingFormat?: string
  /** -u: do not open the backing file */
  unsafe: boolean
  secrets: SecretStore
  warn(message: string): void
  /** called with qemu-img's "Formatting ..." line just before the file is written */
  onFormatting?(line: string): void
}

/** The driver of a format that can create images, with qemu's messages otherwise. */
export async function creatableDriver (format: string): Promise<BlockDriver> {
  const entry = findFormat(format)
  if (!entry) throw new QemuError(`Unknown file format '${format}'`)
  const driver = await entry.load()
  if (!driver.create || !driver.createOptions) throw new QemuError(`Format driver '${format}' does not support image creation`)
  return driver
}

/** Options a create accepts: the format's, then the file protocol's. */
export function createOptionList (driver: BlockDriver): CreateOptionSpec[] {
  return mergeOptionSpecs(driver.createOptions ?? [], FILE_CREATE_OPTIONS)
}

function prefixed (filename: string, e: unknown): unknown {
  if (e instanceof QemuError || e instanceof BlockError) {
    const p = new QemuError(`${filename}: ${e.message}`)
    if (e instanceof QemuError) p.hint = e.hint
    return p
  }
  return e
}

export async function createImage (req: CreateRequest): Promise<void> {
  const { filename } = req
  try {
    const driver = await creatableDriver(req.format)
    const specs = createOptionList(driver)
    // qemu parses the options twice on this path, so each warning shows twice
    const warnings: string[] = []
    const opts = parseCreateOptions(req.options, specs, m => warnings.push(m))
    for (const m of [...warnings, ...warnings]) req.warn(m)
    if (req.size !== undefined) {
      if (opts.size !== undefined) throw new QemuError('The image size must be specified only once')
      setCreateOption(opts, specs, 'size', req.size.toString())
    }
    const hasBackingOption = specs.some(s => s.name === 'backing_file')
    if (req.backingFile !== undefined && !hasBackingOption) throw new QemuError(`Backing file not supported for file format '${req.format}'`)
    if (req.backingFile !== undefined) setCreateOption(opts, specs, 'backing_file', req.backingFile)
    if (req.backingFormat !== undefined) setCreateOption(opts, specs, 'backing_fmt', req.backingFormat)
    const backing = opts.backing_file
    if (backing !== undefined) {
      if (backing === filename) throw new QemuError('Error: Trying to create an image with the same filename as the backing file')
      if (backing === '') throw new QemuError('Expected backing file name, got empty string')
      await checkBacking(req, opts, backing)
    }
    if (opts.size === undefined) throw new QemuError('Image creation needs a size parameter')
    req.onFormatting?.(`Formatting '${filename}', ${describeCreateOptions(req.format, opts, specs)}`)
    await driver.create!(filename, opts, { secrets: req.secrets, warn: req.warn })
  } catch (e) {
    throw prefixed(filename, e)
  }
}

/**
 * The backing file must open (unless -u) and have a format; without a size,
 * the image takes the backing file's.
 */
async function checkBacking (req: CreateRequest, opts: Record<string, string>, backing: string): Promise<void> {
  const fmt = opts.backing_fmt
  if (req.unsafe) {
    if (fmt === undefined) throw new QemuError('Backing file specified without backing format')
    return
  }
  const name = resolveRelative(req.filename, backing)
  let img
  try {
    img = await openImage(name, { format: fmt, noBacking: true, noIO: true, secrets: req.secrets })
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(`${e.message}\nCould not open backing image.`)
    throw e
  }
  try {
    if (fmt === undefined) {
      const err = new QemuError('Backing file specified without backing format')
      err.hint = `Detected format of ${img.format}.`
      throw err
    }
    if (opts.size === undefined) opts.size = String(img.size)
  } finally {
    await img.close()
  }
}
