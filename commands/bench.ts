import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { openForCommand } from '../src/cli/image-args.js'
import { parseCacheMode, isDirect, skipsFlush, type CacheMode } from '../src/cli/cache-mode.js'
import { parseSize, parseUint, sizeSuffixMessage } from '../src/cli/sizes.js'
import { programName } from '../src/cli/program.js'
import { out } from '../src/cli/output.js'
import { bench } from '../src/ops/bench.js'

const INT_MAX = 2147483647

export default class Bench extends QemuCommand {
  static override description = 'Run a simple image benchmark'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':c:d:f:ni:o:qs:S:t:wU',
    long: {
      'flush-interval': { arg: 'required' },
      'image-opts': { arg: 'none' },
      pattern: { arg: 'required' },
      'no-drain': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let count = 75000
    let depth = 64
    let format: string | undefined
    let nativeAio = false
    let aio = 'threads'
    let offset = 0
    let bufferSize = 4096
    let step = 0
    let cache: CacheMode = 'writeback'
    let write = false
    let forceShare = false
    let imageOpts = false
    let pattern = 0
    let flushInterval = 0
    let drain = true
    const sizeArg = (what: string, v: string): number => {
      try {
        return parseSize(v)
      } catch {
        throw new QemuError(sizeSuffixMessage(what, programName()))
      }
    }
    for (const o of opts) {
      const v = o.value ?? ''
      switch (o.name) {
        case 'c': {
          const n = parseUint(v, INT_MAX)
          if (n === undefined) throw new QemuError('Invalid request count specified')
          count = n
          break
        }
        case 'd': {
          const n = parseUint(v, INT_MAX)
          // depth 0 would never issue a request (qemu-img hangs); refuse it instead
          if (n === undefined || n === 0) throw new QemuError('Invalid queue depth specified')
          depth = n
          break
        }
        case 'f': format = v; break
        case 'n': nativeAio = true; break
        case 'i':
          if (!['threads', 'native', 'io_uring'].includes(v)) throw new QemuError(`Invalid aio option: ${v}`)
          aio = v
          break
        case 'o': offset = sizeArg('offset', v); break
        case 'q': break // qemu-img bench prints its lines even with -q
        case 's': {
          const n = sizeArg('buffer size', v)
          if (n > INT_MAX) throw new QemuError(`Invalid buffer size specified. Must be between 0 and ${INT_MAX}.`)
          bufferSize = n
          break
        }
        case 'S': step = sizeArg('step_size', v); break
        case 't': cache = parseCacheMode(v); break
        case 'w': write = true; break
        case 'U': forceShare = true; break
        case 'image-opts': imageOpts = true; break
        case 'pattern': {
          const n = parseUint(v, 255)
          if (n === undefined) throw new QemuError('Invalid pattern byte specified')
          pattern = n
          break
        }
        case 'flush-interval': {
          const n = parseUint(v, INT_MAX)
          if (n === undefined) throw new QemuError('Invalid flush interval specified')
          flushInterval = n
          break
        }
        case 'no-drain': drain = false; break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    if (flushInterval > 0 && !write) throw new QemuError('--flush-interval is only available in write tests')
    if (flushInterval > 0 && flushInterval < depth) throw new QemuError('Flush interval can\'t be smaller than depth')
    if (step === 0) step = bufferSize

    const openProblem = (nativeAio || aio === 'native') && !isDirect(cache)
      ? 'aio=native was specified, but it requires cache.direct=on, which was not specified.'
      : (forceShare && write ? 'force-share=on can only be used with read-only images' : undefined)
    if (openProblem) throw new QemuError(`Could not open '${args[0]}': ${openProblem}`)

    const img = await openForCommand({ name: args[0], format, imageOpts }, { readOnly: !write, forceShare, noFlush: skipsFlush(cache) })
    try {
      out(`Sending ${count} ${write ? 'write' : 'read'} requests, ${bufferSize} bytes each, ${depth} in parallel (starting at offset ${offset}, step size ${step})\n`)
      if (flushInterval > 0) out(`Sending flush every ${flushInterval} requests\n`)
      const r = await bench(img, { count, depth, bufferSize, offset, step, write, pattern, flushInterval, drain })
      out(`Run completed in ${r.seconds.toFixed(3)} seconds.\n`)
    } finally {
      await img.close()
    }
    return 0
  }
}
