import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError } from '../src/cli/errors.js'
import { cvtnum } from '../src/cli/cvtnum.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import type { Image } from '../src/block/types.js'
import { applyBitmapActions, type BitmapAction } from '../src/ops/bitmap.js'

export default class Bitmap extends QemuCommand {
  static override description = 'Perform a modification of the persistent bitmap BITMAP in the disk image FILENAME'
  static override options: OptionSpec = {
    short: ':b:f:F:g:',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      add: { arg: 'none' },
      remove: { arg: 'none' },
      clear: { arg: 'none' },
      enable: { arg: 'none' },
      disable: { arg: 'none' },
      merge: { arg: 'required' },
      granularity: { arg: 'required', short: 'g' },
      'source-file': { arg: 'required', short: 'b' },
      'source-format': { arg: 'required', short: 'F' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let imageOpts = false
    let granularity: bigint | undefined
    let sourceFile: string | undefined
    let sourceFormat: string | undefined
    const objects: string[] = []
    const actions: BitmapAction[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'b': sourceFile = o.value; break
        case 'F': sourceFormat = o.value; break
        // qemu-img converts -g and creates --object objects as it meets them
        case 'g': granularity = cvtnum('granularity', o.value!); break
        case 'object': secretsFromObjects([...objects, o.value!]); objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'add': case 'remove': case 'clear': case 'enable': case 'disable':
          actions.push({ op: o.name as 'add' })
          break
        case 'merge': actions.push({ op: 'merge', source: o.value! }); break
      }
    }
    if (actions.length === 0) throw new QemuError('Need at least one of --add, --remove, --clear, --enable, --disable, or --merge')
    if (granularity && !actions.some(a => a.op === 'add')) throw new QemuError('granularity only supported with --add')
    if (sourceFile !== undefined && !actions.some(a => a.op === 'merge')) throw new QemuError('Merge bitmap source file only supported with --merge')
    if (sourceFormat !== undefined && sourceFile === undefined) throw new QemuError('-F only supported with -b')
    if (args.length !== 2) throw new QemuError('Expecting filename and bitmap name')
    const secrets = secretsFromObjects(objects)

    const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, readOnly: false })
    let source: Image | undefined
    try {
      // the source of --merge is a plain file name even with --image-opts
      if (sourceFile !== undefined) source = await openForCommand({ name: sourceFile, format: sourceFormat }, { secrets })
      await applyBitmapActions(img, { bitmap: args[1], actions, granularity, mergeSource: source })
    } finally {
      await source?.close()
      await img.close()
    }
    return 0
  }
}
