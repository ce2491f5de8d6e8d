import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError, strerror } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { parseCacheMode } from '../src/cli/cache-mode.js'
import { toQemuJson } from '../src/cli/qjson.js'
import { checkToQapi, renderCheckHuman, renderRepairedHuman } from '../src/cli/render/check.js'
import { err, out, report } from '../src/cli/output.js'
import { checkExitCode, checkImage } from '../src/ops/check.js'
import type { CheckMessage, RepairMode } from '../src/block/types.js'

export default class Check extends QemuCommand {
  static override description = 'Check the disk image for consistency or repair it'
  static override options: OptionSpec = {
    short: ':f:r:T:qU',
    long: {
      format: { arg: 'required', short: 'f' },
      repair: { arg: 'required', short: 'r' },
      output: { arg: 'required' },
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let output = 'human'
    let repair: RepairMode | undefined
    let cache: string | undefined
    let quiet = false
    let imageOpts = false
    let forceShare = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'r':
          if (o.value !== 'leaks' && o.value !== 'all') {
            throw new UsageError(`Unknown option value for -r (expecting 'leaks' or 'all'): ${o.value}`)
          }
          repair = o.value
          break
        case 'output': output = o.value!; break
        case 'T': cache = o.value; break
        case 'q': quiet = true; break
        case 'object':
          secretsFromObjects([o.value!]) // qemu creates objects as it parses them: errors come in order
          objects.push(o.value!)
          break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    if (output !== 'human' && output !== 'json') throw new QemuError('--output must be used with human or json as argument.')
    if (cache !== undefined) {
      try {
        parseCacheMode(cache)
      } catch {
        throw new QemuError(`Invalid source cache option: ${cache}`)
      }
    }

    const name = args[0]
    const img = await openForCommand({ name, format, imageOpts }, {
      secrets: secretsFromObjects(objects),
      forceShare,
      readOnly: repair === undefined,
      check: true,
    })
    try {
      const outcome = await checkImage(img, repair)
      const print = (lines: CheckMessage[]): void => {
        for (const l of lines) {
          if (typeof l === 'string') err(l + '\n')
          else report(l.report)
        }
      }
      print(outcome.firstMessages)
      if (outcome.repaired && output === 'human' && !quiet) out(renderRepairedHuman(outcome.repaired))
      print(outcome.secondMessages)
      if (outcome.failure) {
        for (const r of outcome.failure.reports) report(r)
        report(`Check failed: ${strerror(outcome.failure.errno)}`)
        return 1
      }
      const r = outcome.result!
      if (!quiet) {
        if (output === 'json') out(toQemuJson(checkToQapi(name, img.format, r)) + '\n')
        else out(renderCheckHuman(r))
      }
      if (r.checkErrors) report('Check failed')
      return checkExitCode(r)
    } finally {
      await img.close()
    }
  }
}
