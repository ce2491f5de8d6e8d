// qemu-img's cvtnum(): a size-valued option (--start-offset, --max-length,
// ...) with qemu-img's two error messages and its deprecation warning.
import { QemuError } from './errors.js'
import { SizeError, strtosz, sizeSuffixMessage, INT64_MAX } from './sizes.js'
import { report } from './output.js'
import { programName } from './program.js'

/** Parse `text` as the option called `name` ("start offset"); exact, 0 .. INT64_MAX. */
export function cvtnum (name: string, text: string): bigint {
  let value: bigint
  try {
    const parsed = strtosz(text)
    if (parsed.warning) report(`warning: ${parsed.warning}`)
    value = parsed.value
  } catch (e) {
    if (!(e instanceof SizeError)) throw e
    if (e.kind !== 'range') throw new QemuError(sizeSuffixMessage(name, programName()))
    value = INT64_MAX + 1n
  }
  if (value > INT64_MAX) throw new QemuError(`Invalid ${name} specified. Must be between 0 and ${INT64_MAX}.`)
  return value
}
