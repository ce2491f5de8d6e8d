import { skipsFlush } from '../src/cli/cache-mode.js'
import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { checkCacheMode } from '../src/cli/convert-args.js'
import { Progress } from '../src/cli/progress.js'
import { rebaseImage } from '../src/ops/rebase.js'

export default class Rebase extends QemuCommand {
  static override description = 'Change the backing file of an image'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':f:F:b:upt:T:qU',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let backingFormat: string | undefined
    let backing: string | undefined
    let unsafe = false
    let progress = false
    let quiet = false
    let cache: string | undefined
    let srcCache: string | undefined
    let imageOpts = false
    let forceShare = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'F': backingFormat = o.value; break
        case 'b': backing = o.value; break
        case 'u': unsafe = true; break
        case 'p': progress = true; break
        case 't': cache = o.value; break
        case 'T': srcCache = o.value; break
        case 'q': quiet = true; break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
      }
    }
    if (quiet) progress = false
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    if (!unsafe && backing === undefined) throw new UsageError('Must specify backing file (-b) or use unsafe mode (-u)')
    const secrets = secretsFromObjects(objects)
    // the progress line starts before anything can fail, and is finished whatever happens
    const bar = new Progress(progress, 2)
    try {
      if (cache !== undefined) checkCacheMode(cache, 'cache')
      if (srcCache !== undefined) checkCacheMode(srcCache, 'source cache')
      const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, readOnly: false, noBacking: unsafe, noFlush: skipsFlush(cache) })
      try {
        await rebaseImage(img, {
          backing: backing ?? '',
          backingFormat,
          unsafe,
          secrets,
          forceShare,
          onStep: (percent) => bar.step(percent),
        })
        bar.update(100)
      } catch (e) {
        await img.close().catch(() => undefined)
        throw e
      }
      await img.close()
    } finally {
      bar.end()
    }
    return 0
  }
}
