import { QemuCommand, reportError } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { checkOptionList, hasHelpOption, optionHelpLines } from '../src/cli/create-options.js'
import { parseCacheMode, skipsFlush } from '../src/cli/cache-mode.js'
import { StatusProgress } from '../src/cli/status-progress.js'
import { out, report } from '../src/cli/output.js'
import { findFormat } from '../src/block/registry.js'
import type { BlockDriver } from '../src/block/types.js'
import { amendImage, parseAmendOptions } from '../src/ops/amend.js'

export default class Amend extends QemuCommand {
  static override description = 'Amend image format specific options'
  static override options: OptionSpec = {
    short: ':ho:f:t:pq',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      force: { arg: 'none' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let imageOpts = false
    let cache = 'writeback'
    let progress = false
    let quiet = false
    let force = false
    let optionText: string | undefined
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'o':
          checkOptionList(o.value!)
          optionText = optionText === undefined ? o.value! : `${optionText},${o.value!}`
          break
        case 'f': format = o.value; break
        case 't': cache = o.value!; break
        case 'p': progress = true; break
        case 'q': quiet = true; break
        case 'force': force = true; break
        case 'image-opts': imageOpts = true; break
        // qemu-img creates --object objects as it meets them
        case 'object': secretsFromObjects([...objects, o.value!]); objects.push(o.value!); break
      }
    }
    if (optionText === undefined) throw new UsageError('Must specify options (-o)')
    const showProgress = progress && !quiet
    try {
      return await this.amend(optionText, { format, imageOpts, cache, force, objects, args, showProgress })
    } catch (e) {
      if (!showProgress) throw e
      // the error comes before the newline that ends the progress output
      reportError(e)
      return 1
    } finally {
      // qemu-img ends the progress output with a newline whatever happened
      if (showProgress) out('\n')
    }
  }

  private async amend (optionText: string, a: { format?: string, imageOpts: boolean, cache: string, force: boolean, objects: string[], args: string[], showProgress: boolean }): Promise<number> {
    const help = hasHelpOption(optionText)
    if (help && a.format !== undefined) {
      const entry = findFormat(a.format)
      if (!entry) throw new QemuError(`Unknown file format '${a.format}'`)
      out(amendHelp(await entry.load()))
      return 0
    }
    if (a.args.length !== 1) throw new QemuError('Expecting one image file name')
    try { parseCacheMode(a.cache) } catch { throw new QemuError(`Invalid cache option: ${a.cache}`) }
    const secrets = secretsFromObjects(a.objects)
    const img = await openForCommand({ name: a.args[0], format: a.format, imageOpts: a.imageOpts }, { secrets, readOnly: false, noFlush: skipsFlush(a.cache) })
    try {
      const driver = await findFormat(img.format)!.load()
      if (help) {
        out(amendHelp(driver))
        return 0
      }
      const options = parseAmendOptions(driver, optionText, m => report(m))
      let bar: StatusProgress | undefined
      if (a.showProgress) bar = new StatusProgress(1.0)
      try {
        await amendImage(img, { options, force: a.force, secrets, onProgress: bar ? p => bar!.set(p) : undefined })
      } finally {
        bar?.set(100)
      }
    } finally {
      await img.close()
    }
    return 0
  }
}

function amendHelp (driver: BlockDriver): string {
  if (!driver.amendOptions) throw new QemuError(`Format driver '${driver.name}' does not support option amendment`)
  return `Amend options for '${driver.name}':\n` + optionHelpLines(driver.amendOptions)
}
