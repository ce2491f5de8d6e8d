import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { checkOptionList } from '../src/cli/create-options.js'
import { parseImageSizeArg } from '../src/cli/create-args.js'
import { openSnapshotParam, parseSnapshotParam, type SnapshotParam } from '../src/cli/snapshot-param.js'
import { measureImage } from '../src/ops/measure.js'
import { toQemuJson } from '../src/cli/qjson.js'
import { out, report } from '../src/cli/output.js'
import type { Image } from '../src/block/types.js'

export default class Measure extends QemuCommand {
  static override description = 'Calculate the file size required for a new image'
  static override options: OptionSpec = {
    short: ':f:O:o:l:U',
    long: {
      'image-opts': { arg: 'none' },
      object: { arg: 'required' },
      output: { arg: 'required' },
      size: { arg: 'required' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let outFormat = 'raw'
    let options: string | undefined
    let snapshot: SnapshotParam | undefined
    let imageOpts = false
    let forceShare = false
    let json = false
    let size: bigint | undefined
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'O': outFormat = o.value!; break
        case 'o':
          checkOptionList(o.value!)
          options = options === undefined ? o.value : `${options},${o.value}`
          break
        case 'l': snapshot = parseSnapshotParam(o.value!); break
        case 'U': forceShare = true; break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'output':
          if (o.value === 'json') json = true
          else if (o.value === 'human') json = false
          else throw new QemuError('--output must be used with human or json as argument.')
          break
        case 'size': size = parseImageSizeArg(o.value!, report); break
      }
    }
    const secrets = secretsFromObjects(objects)
    if (args.length > 1) throw new QemuError('At most one filename argument is allowed.')
    const filename = args[0]
    if (filename !== undefined && size !== undefined) throw new QemuError('--size N cannot be used together with a filename.')
    if (filename === undefined && (imageOpts || format !== undefined || snapshot !== undefined)) {
      throw new QemuError('--image-opts, -f, and -l require a filename argument.')
    }
    if (filename === undefined && size === undefined) throw new QemuError('Either --size N or one filename must be specified.')

    let source: Image | undefined
    let view: Image | undefined
    try {
      if (filename !== undefined) {
        source = await openForCommand({ name: filename, format, imageOpts }, { secrets, forceShare })
        view = snapshot !== undefined ? await openSnapshotParam(source, snapshot) : source
      }
      const r = await measureImage({ size, source: view, outFormat, options, secrets, warn: report })
      // sizes can pass 2^53: print the exact integers the doubles hold
      const required = BigInt(r.required)
      const fully = BigInt(r.fullyAllocated)
      const bitmaps = r.bitmaps === undefined ? undefined : BigInt(r.bitmaps)
      if (json) {
        out(toQemuJson({ required, 'fully-allocated': fully, bitmaps }) + '\n')
      } else {
        out(`required size: ${required}\nfully allocated size: ${fully}\n`)
        if (bitmaps !== undefined) out(`bitmaps size: ${bitmaps}\n`)
      }
    } finally {
      if (view && view !== source) await view.close()
      await source?.close()
    }
    return 0
  }
}
