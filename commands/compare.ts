import { QemuCommand, reportError } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { out } from '../src/cli/output.js'
import { Progress } from '../src/cli/progress.js'
import { checkCacheMode } from '../src/cli/convert-args.js'
import type { Image } from '../src/block/types.js'
import { compareImages } from '../src/ops/compare.js'

/** Exit codes: 0 identical, 1 different, 2 cannot open, 3 block status failed, 4 read failed. */
const EXIT_OPEN = 2

export default class Compare extends QemuCommand {
  static override description = 'Check if two images have the same content'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':f:F:T:pqsU',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let fmt1: string | undefined
    let fmt2: string | undefined
    let cache = 'writeback'
    let progress = false
    let quiet = false
    let strict = false
    let forceShare = false
    let imageOpts = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': fmt1 = o.value; break
        case 'F': fmt2 = o.value; break
        case 'T': cache = o.value!; break
        case 'p': progress = true; break
        case 'q': quiet = true; break
        case 's': strict = true; break
        case 'U': forceShare = true; break
        case 'image-opts': imageOpts = true; break
        case 'object':
          try {
            secretsFromObjects([o.value!])
          } catch (e) {
            throw e instanceof QemuError ? new QemuError(e.message, EXIT_OPEN) : e
          }
          objects.push(o.value!)
          break
      }
    }
    if (quiet) progress = false
    if (args.length !== 2) throw new UsageError('Expecting two image file names')
    const [name1, name2] = args
    try {
      return await this.compare({ name1, name2, fmt1, fmt2, cache, progress, quiet, strict, forceShare, imageOpts, objects })
    } catch (e) {
      // the error comes first, then the progress line is ended
      reportError(e)
      if (progress) out('\n')
      return Number(process.exitCode ?? 1)
    }
  }

  private async compare (a: {
    name1: string, name2: string, fmt1?: string, fmt2?: string, cache: string, progress: boolean,
    quiet: boolean, strict: boolean, forceShare: boolean, imageOpts: boolean, objects: string[]
  }): Promise<number> {
    checkCacheMode(a.cache, 'source cache', EXIT_OPEN)
    const secrets = secretsFromObjects(a.objects)
    const opened: Image[] = []
    try {
      for (const [name, format] of [[a.name1, a.fmt1], [a.name2, a.fmt2]] as const) {
        try {
          opened.push(await openForCommand({ name, format, imageOpts: a.imageOpts }, { secrets, forceShare: a.forceShare }))
        } catch (e) {
          throw e instanceof QemuError ? new QemuError(e.message, EXIT_OPEN) : e
        }
      }
      const progress = new Progress(a.progress, 2)
      const say = (line: string): void => { if (!a.quiet) out(line + '\n') }
      const result = await compareImages({
        image1: opened[0],
        image2: opened[1],
        name1: a.name1,
        name2: a.name2,
        strict: a.strict,
        onChunk: (bytes, total) => progress.advance(bytes, total),
        onSizeMismatch: () => say('Warning: Image size mismatch!'),
      })
      let code = 1
      switch (result.kind) {
        case 'identical': say('Images are identical.'); code = 0; break
        case 'content-mismatch': say(`Content mismatch at offset ${result.offset}!`); break
        case 'status-mismatch': say(`Strict mode: Offset ${result.offset} block status mismatch!`); break
        case 'size-mismatch': say('Strict mode: Image size mismatch!'); break
      }
      progress.end()
      return code
    } finally {
      for (const img of opened) await img.close()
    }
  }
}
