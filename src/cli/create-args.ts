// Command-line pieces shared by create, convert and measure: the image size
// argument and `-o help`.
import { QemuError, QemuErrorLines } from './errors.js'
import { INT64_MAX, strtosz, SizeError } from './sizes.js'
import { createOptionsHelp } from './create-options.js'
import { creatableDriver } from '../ops/create.js'
import { FILE_CREATE_OPTIONS } from '../block/file-create.js'

/**
 * A size given on the command line (create's size, measure --size), with
 * qemu-img's two messages: a bad number, or one outside 0..2^63-1.
 */
export function parseImageSizeArg (text: string, warn: (message: string) => void): bigint {
  try {
    const r = strtosz(text)
    if (r.warning) warn(`warning: ${r.warning}`)
    if (r.value > INT64_MAX) throw new SizeError('range', 'too large')
    return r.value
  } catch (e) {
    if (!(e instanceof SizeError)) throw e
    if (e.kind === 'range') throw new QemuError('Invalid image size specified. Must be between 0 and 9223372036854775807.')
    throw new QemuErrorLines(['Invalid image size specified. You may use k, M, G, T, P or E suffixes for',
      'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.'])
  }
}

/** `-o help`: the format's options, merged with the file protocol's when a target file is named. */
export async function printCreateOptionsHelp (format: string, filename: string | undefined): Promise<string> {
  const driver = await creatableDriver(format)
  return createOptionsHelp(format, driver.createOptions ?? [], filename === undefined ? null : FILE_CREATE_OPTIONS)
}
