// Size parsing and printing as qemu-img does them (qemu_strtosz, size_to_str).

/**
 * The exact decimal digits of a finite non-negative double and the power of
 * ten of its first digit (a double is a dyadic fraction: its decimal
 * expansion is finite and toFixed(100) holds it whole for |v| < 1e21).
 */
function exactDigits (v: number): { digits: string, exp: number } {
  const text = v < 1e21 ? v.toFixed(100) : BigInt(v).toString()
  const [int, frac = ''] = text.split('.')
  const all = (int + frac).replace(/^0+/, '')
  const exp = int === '0' ? -(frac.length - frac.replace(/^0+/, '').length) - 1 : int.length - 1
  return { digits: all.replace(/0+$/, '') || '0', exp }
}

/** C's printf("%.Ng", v) for non-negative finite v: glibc rounds exact ties to even. */
export function formatG (v: number, precision: number): string {
  if (v === 0) return '0'
  let { digits, exp } = exactDigits(v)
  if (digits.length > precision) {
    const head = digits.slice(0, precision)
    const rest = digits.slice(precision)
    // past the half way up; exactly half way (a lone 5) to the even neighbour
    const up = rest[0] > '5' || (rest[0] === '5' && (rest.length > 1 || Number(head[head.length - 1]) % 2 === 1))
    let n = BigInt(head)
    if (up) n += 1n
    digits = n.toString()
    if (digits.length > precision) { exp++; digits = digits.slice(0, precision) }
  }
  digits = digits.padEnd(precision, '0')
  const strip = (t: string) => t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t
  if (exp < -4 || exp >= precision) {
    const mant = strip(digits[0] + '.' + digits.slice(1))
    return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
  }
  if (exp < 0) return strip('0.' + '0'.repeat(-exp - 1) + digits)
  return strip(digits.slice(0, exp + 1) + '.' + digits.slice(exp + 1))
}

const SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei']

/** "196 KiB", "2 MiB", "0 B": the unit switches once the value reaches 1000 of it. */
export function sizeToStr (val: number): string {
  // exponent of frexp(val / (1000/1024)), i.e. floor(log2(x)) + 1 for x > 0
  const x = val / (1000 / 1024)
  const e = x === 0 ? 0 : Math.floor(Math.log2(x)) + 1
  const i = Math.trunc((e - 1) / 10)
  const div = 2 ** (i * 10)
  return `${formatG(val / div, 3)} ${SUFFIXES[i]}B`
}

const UNITS: Record<string, bigint> = {
  b: 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n, p: 1n << 50n, e: 1n << 60n,
}

export class SizeError extends Error {
  constructor (readonly kind: 'invalid' | 'range', message: string) { super(message) }
}

export interface ParsedSize {
  /** exact value in bytes (0 .. 2^64-1) */
  value: bigint
  /** qemu's deprecation warning for a suffix after a hex number, to be reported by the caller */
  warning?: string
}

const UINT64_MAX = (1n << 64n) - 1n
export const INT64_MAX = (1n << 63n) - 1n

/**
 * qemu_strtosz as qemu-img applies it (observed behaviour): optional leading
 * blanks and '+', no '-'; a decimal integer, a hex integer (0x...), or a
 * decimal fraction (only with a unit larger than bytes, no exponent); then at
 * most one suffix letter b/k/m/g/t/p/e (any case) and nothing else. A suffix
 * after a hex number still works but is deprecated. Values past 2^64-1 are
 * range errors; `defaultSuffix` is the unit when none is given.
 */
export function strtosz (text: string, defaultSuffix = 'b'): ParsedSize {
  const invalid = (): never => { throw new SizeError('invalid', 'Invalid size') }
  const m = /^[ \t\n\v\f\r]*\+?(?:(0[xX][0-9a-fA-F]+)|([0-9]+)(?:\.([0-9]*))?)([bBkKmMgGtTpPeE]?)$/.exec(text)
  if (!m) invalid()
  const [, hex, int, frac, suffix] = m!
  const unit = UNITS[(suffix || defaultSuffix).toLowerCase()]
  let value: bigint
  let warning: string | undefined
  if (hex !== undefined) {
    value = BigInt(hex)
    if (value > UINT64_MAX) throw new SizeError('range', 'Value too large')
    if (suffix) warning = `Using a multiplier suffix on hex numbers is deprecated: ${text}`
    value *= unit
  } else {
    value = BigInt(int!)
    if (value > UINT64_MAX) throw new SizeError('range', 'Value too large')
    let fraction = frac ? Number('0.' + frac) : 0
    if (fraction >= 1) fraction = 0 // so many nines that the double rounds up: qemu drops it
    if (unit === 1n && fraction >= 2 ** -53) invalid()
    value = value * unit + BigInt(Math.round(fraction * Number(unit)))
  }
  if (value > UINT64_MAX) throw new SizeError('range', 'Value too large')
  return { value, warning }
}

/**
 * qemu_strtosz for sizes: returns a number; values from `limit` (default
 * 2^63) up are range errors. `defaultSuffix` applies when none is given
 * (qemu-img's default is bytes, 'b').
 */
export function parseSize (text: string, defaultSuffix = 'b', limit = 2 ** 63): number {
  const { value } = strtosz(text, defaultSuffix)
  if (value >= BigInt(Math.ceil(limit))) throw new SizeError('range', 'Value too large')
  return Number(value)
}

/**
 * qemu-img's two-line message for a size that does not parse, e.g.
 * "Invalid buffer size specified. You may use k, M, G, T, P or E suffixes for"
 * followed by the suffix names on a second, also prefixed, line.
 */
export function sizeSuffixMessage (what: string, program: string): string {
  return `Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for\n` +
    `${program}: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.`
}

/** A plain non-negative decimal integer no larger than `max` (qemu_strtoul/strtol uses), else undefined. */
export function parseUint (text: string, max: number): number | undefined {
  if (!/^\s*\+?\d+$/.test(text)) return undefined
  const v = Number(text)
  return Number.isSafeInteger(v) && v <= max ? v : undefined
}
