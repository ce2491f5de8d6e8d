import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { UsageError } from '../src/cli/errors.js'
import { secretsFromObjects } from '../src/cli/image-args.js'
import { checkOptionList, hasHelpOption } from '../src/cli/create-options.js'
import { parseImageSizeArg, printCreateOptionsHelp } from '../src/cli/create-args.js'
import { createImage } from '../src/ops/create.js'
import { out, report } from '../src/cli/output.js'

export default class Create extends QemuCommand {
  static override description = 'Create a new disk image'
  static override options: OptionSpec = {
    short: ':F:b:f:o:qu',
    long: {
      object: { arg: 'required' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format = 'raw'
    let backingFile: string | undefined
    let backingFormat: string | undefined
    let options: string | undefined
    let quiet = false
    let unsafe = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'F': backingFormat = o.value; break
        case 'b': backingFile = o.value; break
        case 'f': format = o.value!; break
        case 'o':
          checkOptionList(o.value!)
          options = options === undefined ? o.value : `${options},${o.value}`
          break
        case 'q': quiet = true; break
        case 'u': unsafe = true; break
        case 'object': objects.push(o.value!); break
      }
    }
    const secrets = secretsFromObjects(objects)
    if (hasHelpOption(options)) {
      out(await printCreateOptionsHelp(format, args[0]))
      return 0
    }
    if (args.length < 1) throw new UsageError('Expecting image file name')
    const filename = args[0]
    const size = args.length >= 2 ? parseImageSizeArg(args[1], report) : undefined
    if (args.length > 2) throw new UsageError(`Unexpected argument: ${args[2]}`)
    await createImage({
      filename,
      format,
      options,
      size,
      backingFile,
      backingFormat,
      unsafe,
      secrets,
      warn: report,
      onFormatting: line => { if (!quiet) out(line + '\n') },
    })
    return 0
  }
}
