import { skipsFlush } from '../src/cli/cache-mode.js'
import { QemuCommand, reportError } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { BlockError, QemuError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { err, out, report } from '../src/cli/output.js'
import { Progress } from '../src/cli/progress.js'
import { checkCacheMode, parseCoroutines, parseRateLimit, parseSparseSize } from '../src/cli/convert-args.js'
import { openSnapshotParam, parseSnapshotParam, type SnapshotParam } from '../src/cli/snapshot-param.js'
import { createOptionsHelp, hasHelpOption, isValidOptionList, mergeOptionSpecs, parseCreateOptions } from '../src/cli/create-options.js'
import { findFormat } from '../src/block/registry.js'
import { creatableDriver, createImageFile } from '../src/block/create.js'
import { FILE_CREATE_OPTIONS, sameFile } from '../src/block/file-create.js'
import type { BlockDriver, Image } from '../src/block/types.js'
import type { SecretStore } from '../src/block/secrets.js'
import { convertImages } from '../src/ops/convert.js'
import { bitmapsSupported, checkBitmapSource, copyBitmaps } from '../src/ops/bitmap-copy.js'

interface ConvertArgs {
  srcFormat?: string
  outFormat?: string
  backingFile?: string
  backingFormat?: string
  compress: boolean
  options: string[]
  snapshot?: SnapshotParam
  sparse: number
  sparseGiven: boolean
  progress: boolean
  quiet: boolean
  cache: string
  srcCache: string
  skipCreate: boolean
  workers: number
  outOfOrder: boolean
  rateLimit: number
  forceShare: boolean
  copyOffload: boolean
  imageOpts: boolean
  targetImageOpts: boolean
  targetIsZero: boolean
  bitmaps: boolean
  skipBrokenBitmaps: boolean
  salvage: boolean
  objects: string[]
}

const SECTOR = 512

export default class Convert extends QemuCommand {
  private progress?: Progress

  static override description = 'Convert the disk image FILENAME (or several, concatenated) to disk image OUTPUT_FILENAME'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':f:O:B:CcF:o:l:S:pt:T:qnm:WUr:',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'target-image-opts': { arg: 'none' },
      'target-is-zero': { arg: 'none' },
      bitmaps: { arg: 'none' },
      'skip-broken-bitmaps': { arg: 'none' },
      salvage: { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    const a = parseArgs(opts)
    checkCombinations(a)

    const [sources, target] = [args.slice(0, -1), args[args.length - 1]]
    const optionText = a.options.join(',')
    if (a.options.length > 0 && hasHelpOption(optionText)) {
      out(await optionsHelp(a.outFormat ?? 'raw', sources.length >= 1))
      return 0
    }
    if (sources.length < 1) throw new QemuError('Must specify image file name')
    checkCacheMode(a.srcCache, 'source cache')

    this.progress = new Progress(a.progress && !a.quiet, 1)
    try {
      await this.convert(a, sources, target, optionText)
      this.progress.update(100)
    } catch (e) {
      // qemu reports the error before it ends the progress line
      reportError(e)
      this.progress.end()
      return Number(process.exitCode ?? 1)
    }
    this.progress.end()
    return 0
  }

  private async convert (a: ConvertArgs, sourceNames: string[], target: string, optionText: string): Promise<number> {
    const secrets = secretsFromObjects(a.objects)
    const opened: Image[] = []
    let targetImage: Image | undefined
    let failed = true
    try {
      for (const name of sourceNames) {
        opened.push(await openForCommand({ name, format: a.srcFormat, imageOpts: a.imageOpts }, { secrets, forceShare: a.forceShare }))
      }
      // a bare ID_OR_NAME only works with one source; snapshot.id=/name= apply to the first
      if (sourceNames.length > 1 && a.snapshot?.idOrName) throw new QemuError('No support for concatenating multiple snapshot')
      const sources = [...opened]
      if (a.snapshot) sources[0] = await openSnapshotParam(opened[0], a.snapshot)
      if (a.targetIsZero && a.backingFile !== undefined) {
        // qemu reports this and then ends as if it had converted (exit code 0)
        report('Cannot use --target-is-zero when the destination image has a backing file')
        return 0
      }
      const totalSectors = sources.reduce((n, s) => n + Math.ceil(s.size / SECTOR), 0)

      let driver: BlockDriver | undefined
      let createOptions: Record<string, string> = {}
      let createWarnings: string[] = []
      if (!a.skipCreate) {
        driver = await creatableDriver(a.outFormat ?? 'raw')
        const planned = targetCreateOptions(driver, a, optionText, totalSectors * SECTOR)
        createOptions = planned.options
        createWarnings = planned.warnings
      }
      if (a.bitmaps) {
        if (sources.length > 1) throw new QemuError('Copying bitmaps only possible with single source')
        checkBitmapSource(opened[0], a.skipBrokenBitmaps)
      }
      checkCacheMode(a.cache, 'cache')
      // qemu's sources do not let anyone write them (unless -U): a target that is one of
      // them fails to get its write lock (checked here too, whatever a raw source's lock says)
      const overSource = !a.forceShare && sources.some(s => chainFiles(s).some(f => sameFile(f, targetFileName(target, a))))
      if (driver) {
        if (overSource) throw new QemuError(`${target}: error while converting ${driver.name}: ${lockMessage(target)}`)
        for (const m of createWarnings) report(m)
        await create(driver, target, createOptions, secrets)
      } else if (overSource) {
        throw new QemuError(`Could not open '${target}': ${lockMessage(target)}`)
      }
      const targetHasBacking = a.skipCreate ? a.backingFile !== undefined : (createOptions.backing_file ?? '') !== ''
      // an encrypted target is opened with the secret it was created with
      const keyOptions = Object.fromEntries(Object.entries(createOptions).filter(([k]) => k === 'key-secret' || k === 'encrypt.key-secret'))
      targetImage = await openForCommand(
        { name: target, format: a.targetImageOpts ? a.outFormat : (a.outFormat ?? 'raw'), imageOpts: a.targetImageOpts },
        { secrets, readOnly: false, options: keyOptions, noFlush: skipsFlush(a.cache) },
      )
      const targetDriver = await loadFormat(targetImage.format)
      if (a.skipCreate && a.compress && !targetDriver.supportsCompression) throw new QemuError('Compression not supported for this file format')
      if (a.bitmaps && !bitmapsSupported(targetImage)) throw new QemuError(`Format driver '${targetImage.format}' does not support bitmaps`)
      if (a.skipCreate && targetImage.size < totalSectors * SECTOR) throw new QemuError('output file is smaller than input file')

      await convertImages({
        sources,
        target: targetImage,
        minSparse: a.sparse,
        hasZeroInit: a.skipCreate ? a.targetIsZero : !targetHasBacking && !targetDriver.noZeroInit,
        targetHasBacking,
        compress: a.compress,
        workers: a.workers,
        outOfOrder: a.outOfOrder,
        salvage: a.salvage,
        copyOffload: a.copyOffload,
        rateLimit: a.rateLimit,
        // only with a progress line to draw (without one, raw targets may overlap their writes)
        onProgress: this.progress?.enabled ? (p) => this.progress?.update(p) : undefined,
        warn: (m) => { if (!a.quiet) report(m) },
      })
      if (a.bitmaps) await copyBitmaps(opened[0], targetImage, { skipBroken: a.skipBrokenBitmaps, warn: report })
      failed = false
      return 0
    } finally {
      // after a failure, the error to report is that one (qemu's): closing
      // may fail too (a full disk refuses the target's last metadata)
      const close = (img: { close (): Promise<void> }) => failed ? img.close().catch(() => undefined) : img.close()
      if (targetImage) await close(targetImage)
      for (const img of opened) await close(img)
    }
  }
}

function parseArgs (opts: ParsedArgs['opts']): ConvertArgs {
  const a: ConvertArgs = {
    compress: false,
    options: [],
    sparse: 8 * SECTOR,
    sparseGiven: false,
    progress: false,
    quiet: false,
    cache: 'unsafe',
    srcCache: 'writeback',
    skipCreate: false,
    workers: 8,
    outOfOrder: false,
    rateLimit: 0,
    forceShare: false,
    copyOffload: false,
    imageOpts: false,
    targetImageOpts: false,
    targetIsZero: false,
    bitmaps: false,
    skipBrokenBitmaps: false,
    salvage: false,
    objects: [],
  }
  // values are checked in command-line order, so the first bad one is reported
  for (const o of opts) {
    const v = o.value!
    switch (o.name) {
      case 'f': a.srcFormat = v; break
      case 'O': a.outFormat = v; break
      case 'B': a.backingFile = v; break
      case 'F': a.backingFormat = v; break
      case 'c': a.compress = true; break
      case 'o':
        if (!isValidOptionList(v)) throw new QemuError(`Invalid option list: ${v}`)
        a.options.push(v)
        break
      case 'l': a.snapshot = parseSnapshotParam(v); break
      case 'S': a.sparse = parseSparseSize(v); a.sparseGiven = true; break
      case 'p': a.progress = true; break
      case 't': a.cache = v; break
      case 'T': a.srcCache = v; break
      case 'q': a.quiet = true; break
      case 'n': a.skipCreate = true; break
      case 'm': a.workers = parseCoroutines(v); break
      case 'W': a.outOfOrder = true; break
      case 'U': a.forceShare = true; break
      case 'r': a.rateLimit = parseRateLimit(v); break
      case 'C': a.copyOffload = true; break
      case 'object': secretsFromObjects([v]); a.objects.push(v); break
      case 'image-opts': a.imageOpts = true; break
      case 'target-image-opts': a.targetImageOpts = true; break
      case 'target-is-zero': a.targetIsZero = true; break
      case 'bitmaps': a.bitmaps = true; break
      case 'skip-broken-bitmaps': a.skipBrokenBitmaps = true; break
      case 'salvage': a.salvage = true; break
    }
  }
  return a
}

/** The refusals qemu-img makes before it opens anything, in its order. */
function checkCombinations (a: ConvertArgs): void {
  if (a.skipBrokenBitmaps && !a.bitmaps) throw new QemuError('Use of --skip-broken-bitmaps requires --bitmaps')
  if (a.copyOffload && a.compress) throw new QemuError('Cannot enable copy offloading when -c is used')
  if (a.copyOffload && a.sparseGiven) throw new QemuError('Cannot enable copy offloading when -S is used')
  if (a.copyOffload && a.salvage) throw new QemuError('Cannot use copy offloading in salvaging mode')
  if (a.targetImageOpts && !a.skipCreate) throw new QemuError('--target-image-opts requires use of -n flag')
  if (a.targetIsZero && !a.skipCreate) throw new QemuError('--target-is-zero requires use of -n flag')
  if (a.skipCreate && a.options.length > 0) throw new QemuError('-o has no effect when skipping image creation')
}

async function loadFormat (name: string): Promise<BlockDriver> {
  const entry = findFormat(name)
  if (!entry) throw new QemuError(`Unknown file format '${name}'`)
  return entry.load()
}

async function optionsHelp (format: string, withTarget: boolean): Promise<string> {
  const driver = await creatableDriver(format)
  return createOptionsHelp(format, driver.createOptions ?? [], withTarget ? FILE_CREATE_OPTIONS : null)
}

/**
 * Validate what the target will be created with; returns the create options
 * and the warnings parsing them gave (printed now, and again when the image
 * is created: qemu parses the options twice).
 */
function targetCreateOptions (driver: BlockDriver, a: ConvertArgs, optionText: string, size: number): { options: Record<string, string>, warnings: string[] } {
  const specs = mergeOptionSpecs(driver.createOptions ?? [], FILE_CREATE_OPTIONS)
  const warnings: string[] = []
  const options = optionText ? parseCreateOptions(optionText, specs, m => { warnings.push(m); report(m) }) : {}
  const names = new Set(specs.map(s => s.name))
  if (a.backingFile !== undefined) {
    if (!names.has('backing_file')) throw new QemuError(`Backing file not supported for file format '${driver.name}'`)
    options.backing_file = a.backingFile
  }
  if (a.backingFormat !== undefined) {
    if (!names.has('backing_fmt')) throw new QemuError(`Backing file format not supported for file format '${driver.name}'`)
    options.backing_fmt = a.backingFormat
  }
  if (options.backing_file !== undefined && options.backing_fmt === undefined) throw new QemuError('Use of backing file requires explicit backing format')
  if (a.compress) {
    if (!driver.supportsCompression) throw new QemuError('Compression not supported for this file format')
    if ((options.preallocation ?? 'off') !== 'off') throw new QemuError('Compression and preallocation not supported at the same time')
  }
  options.size = String(size)
  return { options, warnings }
}

async function create (driver: BlockDriver, target: string, options: Record<string, string>, secrets: SecretStore): Promise<void> {
  try {
    await createImageFile(driver, target, options, { secrets, warn: err })
  } catch (e) {
    if (e instanceof BlockError || e instanceof QemuError) throw new QemuError(`${target}: error while converting ${driver.name}: ${e.message}`)
    throw e
  }
}

function lockMessage (name: string): string {
  return `Failed to get "write" lock\nIs another process using the image [${name}]?`
}

/** Every file an opened image reads from, down its backing chain. */
function chainFiles (img: Image): string[] {
  const files: string[] = []
  for (let i: Image | null = img; i; i = i.backing) files.push(i.store.filename)
  return files
}

/** The file an --image-opts target string names (for the lock check). */
function targetFileName (target: string, a: ConvertArgs): string {
  if (!a.targetImageOpts) return target
  const m = /(?:^|,)(?:file\.)?filename=([^,]*)/.exec(target)
  return m ? m[1] : target
}
