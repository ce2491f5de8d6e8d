import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { parseCacheMode } from '../src/cli/cache-mode.js'
import { JobProgress } from '../src/cli/job-progress.js'
import { parseSize, SizeError } from '../src/cli/sizes.js'
import { out, report } from '../src/cli/output.js'
import { commitImage } from '../src/ops/commit.js'

export default class Commit extends QemuCommand {
  static override description = 'Commit the changes recorded in the image to its backing file'
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
        case 'r': rateLimit = parseRate(o.value!); break
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
      }
    }
    if (quiet) progress = false
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    const secrets = secretsFromObjects(objects)
    if (cache !== undefined) {
      try { parseCacheMode(cache) } catch { throw new QemuError(`Invalid cache option: ${cache}`) }
    }

    const img = await openForCommand({ name: args[0], format, imageOpts }, { secrets, readOnly: false, writableBacking: true })
    // from here on the progress line is started, and finished whatever happens
    const bar = new JobProgress(progress, 1)
    try {
      await commitImage(img, {
        base,
        drop,
        rateLimit,
        onProgress: (done, total) => { if (total > 0) bar.print(done / total * 100, 0) },
      })
      bar.print(100, 0)
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

/** -r: a size with qemu's suffixes (bytes per second), as qemu-img's cvtnum reads it. */
function parseRate (text: string): number {
  try {
    return parseSize(text, 'b')
  } catch (e) {
    if (e instanceof SizeError && e.kind === 'range') throw new QemuError('Invalid rate limit specified. Must be between 0 and 9223372036854775807.')
    report('Invalid rate limit specified. You may use k, M, G, T, P or E suffixes for')
    throw new QemuError('kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.')
  }
}
