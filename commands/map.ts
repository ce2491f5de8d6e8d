import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { BlockError, QemuError, UsageError, strerror } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { cvtnum } from '../src/cli/cvtnum.js'
import { out } from '../src/cli/output.js'
import { mapImage } from '../src/ops/map.js'
import { writeMap } from '../src/cli/render/map.js'

export default class Map extends QemuCommand {
  static override description = 'Dump image metadata: where the data of each range is stored'
  static override options: OptionSpec = {
    short: ':f:U',
    long: {
      format: { arg: 'required', short: 'f' },
      output: { arg: 'required' },
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
      'start-offset': { arg: 'required' },
      'max-length': { arg: 'required' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let output = 'human'
    let imageOpts = false
    let forceShare = false
    let start = 0n
    let maxLength: bigint | undefined
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'output': output = o.value!; break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
        case 'start-offset': start = cvtnum('start offset', o.value!); break
        case 'max-length': maxLength = cvtnum('max length', o.value!); break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    if (output !== 'human' && output !== 'json') throw new QemuError('--output must be used with human or json as argument.')
    const json = output === 'json'
    const secrets = secretsFromObjects(objects)

    const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, forceShare })
    try {
      let end = BigInt(img.size)
      if (maxLength !== undefined) {
        // qemu adds in int64: a sum past INT64_MAX wraps negative and maps nothing
        const sum = start + maxLength
        const wrapped = sum > (1n << 63n) - 1n ? sum - (1n << 64n) : sum
        if (wrapped < end) end = wrapped
      }
      // an empty range still prints one entry of length 0 at the start offset in JSON
      const entries = start >= end
        ? [{ entry: { start, length: 0, depth: 0, present: false, zero: false, data: false }, last: true }]
        : mapImage(img, Number(start), Number(end))
      try {
        await writeMap(entries, json, out)
      } catch (e) {
        if (e instanceof BlockError) throw new QemuError(`Could not read file metadata: ${strerror(e.errno)}`)
        throw e
      }
    } finally {
      await img.close()
    }
    return 0
  }
}
