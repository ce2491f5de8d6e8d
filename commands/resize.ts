import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { getopt } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { parseSize, SizeError } from '../src/cli/sizes.js'
import { out, report } from '../src/cli/output.js'
import type { Preallocation } from '../src/block/types.js'
import { resizeImage, ShrinkRefused } from '../src/ops/resize.js'

const PREALLOC_MODES = ['off', 'metadata', 'falloc', 'full']

export default class Resize extends QemuCommand {
  static override description = 'Resize the disk image'
  static override options: OptionSpec = {
    short: ':f:hq',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      preallocation: { arg: 'required' },
      shrink: { arg: 'none' },
    },
  }

  /**
   * qemu-img takes the size off the end of the command line before option
   * parsing, so that "-1G" is a size and not an option.
   */
  override async run (): Promise<void> {
    const argv = [...this.argv]
    if (argv.length < 2) throw new UsageError('Not enough arguments')
    const sizeText = argv.pop()!
    const spec = Resize.options
    const parsed = getopt(argv, { ...spec, long: { help: { arg: 'none', short: 'h' }, ...spec.long } })
    if (parsed.opts.some(o => o.name === 'h')) { out(await this.helpText()); return }
    const code = await this.resize(parsed, sizeText)
    if (code !== 0) process.exitCode = code
  }

  protected async exec (_parsed: ParsedArgs): Promise<number> {
    throw new Error('unreachable: resize parses its own command line')
  }

  private async resize ({ opts, args }: ParsedArgs, sizeText: string): Promise<number> {
    let format: string | undefined
    let imageOpts = false
    let quiet = false
    let shrink = false
    let preallocation: Preallocation = 'off'
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'q': quiet = true; break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'shrink': shrink = true; break
        case 'preallocation':
          if (!PREALLOC_MODES.includes(o.value!)) throw new QemuError(`Invalid preallocation mode '${o.value}'`)
          preallocation = o.value as Preallocation
          break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting image file name and size')
    const secrets = secretsFromObjects(objects)

    let relative: '+' | '-' | undefined
    let text = sizeText
    if (text.startsWith('+') || text.startsWith('-')) { relative = text[0] as '+' | '-'; text = text.slice(1) }
    let amount: number
    try {
      amount = parseSize(text, 'b', 2 ** 64)
    } catch (e) {
      if (e instanceof SizeError && e.kind === 'range') throw new QemuError(`Value '${text}' is out of range for parameter 'size'`)
      throw new QemuError('Parameter \'size\' expects a non-negative number below 2^64\n' +
        'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.')
    }

    const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, readOnly: false })
    try {
      await resizeImage(img, { amount, relative, preallocation, shrink })
    } catch (e) {
      if (e instanceof ShrinkRefused) {
        report(e.message)
        report(`warning: ${e.warning}`)
        return 1
      }
      throw e
    } finally {
      await img.close()
    }
    if (!quiet) out('Image resized.\n')
    return 0
  }
}
