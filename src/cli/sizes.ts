// Size parsing and printing as qemu-img does them (qemu_strtosz, size_to_str).

/** C's printf("%.Ng", v) for non-negative finite v. */
export function formatG (v: number, precision: number): string {
  if (v === 0) return '0'
  let exp = Math.floor(Math.log10(Math.abs(v)))
  // rounding can carry into the next power of ten (999.6 -> 1e+03 at %.3g)
  const rounded = Number(v.toPrecision(precision))
  if (rounded !== 0) exp = Math.floor(Math.log10(Math.abs(rounded)))
  if (exp < -4 || exp >= precision) {
    let [mant, e] = rounded.toExponential(precision - 1).split('e')
    if (mant.includes('.')) mant = mant.replace(/0+$/, '').replace(/\.$/, '')
    const en = Number(e)
    return `${mant}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`
  }
  let s = rounded.toFixed(Math.max(0, precision - 1 - exp))
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '')
  return s
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

const UNITS: Record<string, number> = {
  b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60,
}

export class SizeError extends Error {
  constructor (readonly kind: 'invalid' | 'range', message: string) { super(message) }
}

/**
 * qemu_strtosz: a number (decimal, or 0x hex without fraction) with an optional
 * suffix; `defaultSuffix` applies when none is given (qemu-img's default is
 * bytes, 'B'). Fractions are allowed with a suffix larger than bytes.
 * Returns a number; values from `limit` (default 2^63) up are range errors.
 */
export function parseSize (text: string, defaultSuffix = 'b', limit = 2 ** 63): number {
  const m = /^\s*(0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.)\s*([bBkKmMgGtTpPeE]?)$/.exec(text)
  // "1e3" would be ambiguous with the E suffix: qemu rejects exponents too
  if (!m || /[eE][+-]?[0-9]/.test(m[1]) && !m[1].startsWith('0x') && !m[1].startsWith('0X')) {
    throw new SizeError('invalid', 'Invalid size')
  }
  const numText = m[1]
  const unit = UNITS[(m[2] || defaultSuffix).toLowerCase()]
  let value: number
  if (/^0[xX]/.test(numText)) {
    value = parseInt(numText, 16)
  } else {
    value = Number(numText)
    if (numText.includes('.') && unit === 1) throw new SizeError('invalid', 'Invalid size')
  }
  const bytes = value * unit
  if (!Number.isFinite(bytes) || bytes >= limit) throw new SizeError('range', 'Value too large')
  return Math.round(bytes)
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
