import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { imageInfo, chainKey, type ImageInfo } from '../src/ops/info.js'
import { resolveRelative } from '../src/block/paths.js'
import { toQemuJson } from '../src/cli/qjson.js'
import { renderInfoHuman } from '../src/cli/render/info.js'
import { out } from '../src/cli/output.js'

export default class Info extends QemuCommand {
  static override description = 'Give information about the disk image'
  static override options: OptionSpec = {
    short: ':f:U',
    long: {
      format: { arg: 'required', short: 'f' },
      output: { arg: 'required' },
      'backing-chain': { arg: 'none' },
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let output = 'human'
    let chain = false
    let imageOpts = false
    let forceShare = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'output': output = o.value!; break
        case 'backing-chain': chain = true; break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    if (output !== 'human' && output !== 'json') throw new QemuError('--output must be used with human or json as argument.')
    const secrets = secretsFromObjects(objects)

    const infos: ImageInfo[] = []
    const seen = new Set<string>()
    let name: string | undefined = args[0]
    let fmt = format
    let first = true
    while (name !== undefined) {
      if (seen.has(chainKey(name))) throw new QemuError(`Backing file '${name}' creates an infinite loop.`)
      seen.add(chainKey(name))
      const img = await openForCommand({ name, format: fmt, imageOpts: first && imageOpts }, { secrets, forceShare, noBacking: true, noIO: true })
      try {
        infos.push(await imageInfo(img))
        name = chain && img.backingName ? resolveRelative(img.filename, img.backingName) : undefined
        fmt = img.backingFormat
      } finally {
        await img.close()
      }
      first = false
    }

    if (output === 'json') {
      out(toQemuJson(chain ? infos : infos[0]) + '\n')
    } else {
      out(infos.map(renderInfoHuman).join('\n'))
    }
    return 0
  }
}
