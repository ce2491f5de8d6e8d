import { skipsFlush } from '../src/cli/cache-mode.js'
import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { checkCacheMode } from '../src/cli/convert-args.js'
import { Progress } from '../src/cli/progress.js'
import { cvtnum } from '../src/cli/cvtnum.js'
import { out } from '../src/cli/output.js'
import { commitImage } from '../src/ops/commit.js'

export default class Commit extends QemuCommand {
  static override description = 'Commit the changes recorded in the image to its backing file'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':f:ht:b:dpqr:',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let cache: string | undefined
    let base: string | undefined
    let drop = false
    let progress = false
    let quiet = false
    let rateLimit = 0
    let imageOpts = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 't': cache = o.value; break
        case 'b': base = o.value; break
        case 'd': drop = true; break
        case 'p': progress = true; break
        case 'q': quiet = true; break
        case 'r': rateLimit = Number(cvtnum('rate limit', o.value!)); break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
      }
    }
    if (quiet) progress = false
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    const secrets = secretsFromObjects(objects)
    if (cache !== undefined) checkCacheMode(cache, 'cache')

    const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, readOnly: false, writableBacking: true, noFlush: skipsFlush(cache) })
    // from here on the progress line is started, and finished whatever happens
    const bar = new Progress(progress, 1)
    try {
      await commitImage(img, {
        base,
        drop,
        rateLimit,
        onProgress: (done, total) => { if (total > 0) bar.update(done / total * 100) },
      })
      bar.update(100)
    } catch (e) {
      await img.close().catch(() => undefined)
      throw e
    } finally {
      bar.end()
    }
    await img.close()
    if (!quiet) out('Image committed.\n')
    return 0
  }
}
