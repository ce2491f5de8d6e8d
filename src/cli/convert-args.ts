// Parsing convert's option values (-S, -r, -m, -l) with qemu-img's rules and
// messages. Messages that qemu prints as two error lines carry the second
// line's program-name prefix themselves.
import { QemuError } from './errors.js'
import { parseSize } from './sizes.js'
import { programName } from './program.js'
import { parseCacheMode, type CacheMode } from './cache-mode.js'

const SUFFIX_HINT = 'You may use k, M, G, T, P or E suffixes for'
const SUFFIX_HINT2 = 'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.'

export function twoLines (first: string, second: string): string {
  return `${first}\n${programName()}: ${second}`
}

/** -S: a size in bytes, a multiple of 512 up to 16 MiB (0 disables sparse detection). */
export function parseSparseSize (text: string): number {
  let n: number
  try {
    n = parseSize(text)
  } catch {
    throw new QemuError(twoLines(`Invalid buffer size for sparse output specified. ${SUFFIX_HINT}`, SUFFIX_HINT2))
  }
  if (n % 512 !== 0 || n > 16 << 20) {
    throw new QemuError('Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).')
  }
  return n
}

/** -r: bytes per second. */
export function parseRateLimit (text: string): number {
  try {
    return parseSize(text)
  } catch {
    throw new QemuError(twoLines(`Invalid rate limit specified. ${SUFFIX_HINT}`, SUFFIX_HINT2))
  }
}

/** C strtoul with base 0 over the whole string (leading blanks allowed), or undefined. */
export function parseCULong (text: string): number | undefined {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text)
  if (!m) return undefined
  const t = m[1]
  if (/^0[xX]/.test(t)) return parseInt(t.slice(2), 16)
  if (t.length > 1 && t.startsWith('0')) return parseInt(t.slice(1), 8)
  return Number(t)
}

/** -m: 1..16 parallel workers. */
export function parseCoroutines (text: string): number {
  const n = parseCULong(text)
  if (n === undefined || n < 1 || n > 16) {
    throw new QemuError('Invalid number of coroutines. Allowed number of coroutines is between 1 and 16')
  }
  return n
}

/** -t / -T: a cache mode name, or qemu-img's message ("Invalid cache option: x", "Invalid source cache option: x"). */
export function checkCacheMode (name: string, which: 'cache' | 'source cache', exitCode = 1): CacheMode {
  try {
    return parseCacheMode(name)
  } catch {
    throw new QemuError(`Invalid ${which} option: ${name}`, exitCode)
  }
}
