import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { BlockError, QemuError } from '../src/cli/errors.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { parseSize, sizeSuffixMessage } from '../src/cli/sizes.js'
import { programName } from '../src/cli/program.js'
import { report, err } from '../src/cli/output.js'
import { findFormat } from '../src/block/registry.js'
import { createImageFile } from '../src/block/create.js'
import { ddCopy, ddRange } from '../src/ops/dd.js'

const INT_MAX = 2147483647
const SECTOR = 512

export default class Dd extends QemuCommand {
  static override description = 'Copy from input to output, converting the format'
  static override throughput = true
  static override options: OptionSpec = {
    short: ':f:O:U',
    long: {
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
      object: { arg: 'required' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let outFormat = 'raw'
    let imageOpts = false
    let forceShare = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'O': outFormat = o.value!; break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
        case 'object': objects.push(o.value!); break
      }
    }
    let blockSize = SECTOR
    let count: number | undefined
    let skip = 0
    let input: string | undefined
    let output: string | undefined
    const sizeOperand = (what: string, v: string): number => {
      try {
        const n = parseSize(v)
        if (n < 0) throw new Error()
        return n
      } catch {
        throw new QemuError(sizeSuffixMessage(what, programName()))
      }
    }
    for (const a of args) {
      const eq = a.indexOf('=')
      const key = eq < 0 ? a : a.slice(0, eq)
      const value = eq < 0 ? undefined : a.slice(eq + 1)
      if (value === undefined || !['bs', 'count', 'if', 'of', 'skip'].includes(key)) {
        throw new QemuError(`unrecognized operand ${key}`)
      }
      switch (key) {
        case 'bs':
          blockSize = sizeOperand('bs', value)
          if (blockSize < 1 || blockSize > INT_MAX) throw new QemuError(`Invalid bs specified. Must be between 1 and ${INT_MAX}.`)
          break
        case 'count': count = sizeOperand('count', value); break
        case 'skip': skip = sizeOperand('skip', value); break
        case 'if': input = value; break
        case 'of': output = value; break
      }
    }
    if (input === undefined || output === undefined) throw new QemuError('Must specify both input and output files')
    const secrets = secretsFromObjects(objects)

    const src = await openForCommand({ name: input, format, imageOpts }, { secrets, forceShare })
    try {
      const entry = findFormat(outFormat)
      if (!entry) throw new QemuError('Unknown file format')
      const driver = await entry.load()
      if (!driver.create) throw new QemuError(`Format driver '${outFormat}' does not support image creation`)
      const range = ddRange(src.size, blockSize, count, skip)
      const outSize = Math.max(range.end - range.start, 0)
      try {
        await createImageFile(driver, output, { size: String(Math.ceil(outSize / SECTOR) * SECTOR) }, { secrets, warn: err })
      } catch (e) {
        if (e instanceof BlockError || e instanceof QemuError) throw new QemuError(`${output}: error while creating output image: ${e.message}`)
        throw e
      }
      const dst = await openForCommand({ name: output, format: outFormat }, { secrets, readOnly: false })
      try {
        if (range.skipTooFar) {
          // qemu-img reports this but still exits 0, leaving the empty output
          report(`${input}: cannot skip to specified offset`)
          return 0
        }
        await ddCopy(src, dst, range.start, range.end, blockSize)
      } finally {
        await dst.close()
      }
    } finally {
      await src.close()
    }
    return 0
  }
}
