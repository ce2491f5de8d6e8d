// -o option strings for create, convert, amend and measure, handled as
// qemu-img handles them: the syntax check of each -o argument, typed parsing
// against a format's option list (with qemu's messages), `-o help`, and the
// option summary of the "Formatting ..." line.
import type { CreateOptionSpec } from '../block/types.js'
import { QemuError } from './errors.js'
import { strtosz, SizeError } from './sizes.js'
import { parseOptsElements } from './qemu-opts.js'

const UINT64_MAX = (1n << 64n) - 1n

/** Split an option string at commas that are not doubled; ",," stands for ','. */
export function splitOptionList (text: string): string[] {
  const elems: string[] = []
  let cur = ''
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ',') {
      if (text[i + 1] === ',') { cur += ','; i++; continue }
      elems.push(cur)
      cur = ''
      continue
    }
    cur += text[i]
  }
  elems.push(cur)
  return elems
}

/** qemu-img's check of one -o argument: no empty element (",", "a,", ",a", ""). */
export function isValidOptionList (text: string): boolean {
  return !splitOptionList(text).some(e => e === '')
}

export function checkOptionList (text: string): void {
  if (!isValidOptionList(text)) throw new QemuError(`Invalid option list: ${text}`)
}

/** Does the accumulated -o string ask for help ("help" or "?" as an element)? */
export function hasHelpOption (text: string | undefined): boolean {
  return text !== undefined && splitOptionList(text).some(e => e === 'help' || e === '?')
}

const BOOL_WORDS = new Set(['on', 'off', 'yes', 'no', 'true', 'false'])

/** A boolean option's value as a flag (values were validated when parsed). */
export function isOn (value: string | undefined): boolean {
  return value === 'on' || value === 'yes' || value === 'true'
}

/** qemu_strtou64 with base 0: white space, sign (negative wraps), 0x hex, 0 octal. */
function parseU64 (name: string, text: string): bigint {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text)
  if (!m) throw new QemuError(`Parameter '${name}' expects a number`)
  const digits = m[2]
  const v = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt('0o' + digits.slice(1)) : BigInt(digits)
  if (v > UINT64_MAX) throw new QemuError(`Value '${text}' is too large for parameter '${name}'`)
  return m[1] === '-' ? (-v) & UINT64_MAX : v
}

const SIZE_HINT = 'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.'

/**
 * The value as qemu keeps and prints it: numbers and sizes as signed 64-bit
 * decimals, booleans and strings as given.
 */
function normalize (spec: CreateOptionSpec, value: string, warn: (m: string) => void): string {
  switch (spec.type) {
    case 'bool':
      if (!BOOL_WORDS.has(value)) throw new QemuError(`Parameter '${spec.name}' expects 'on' or 'off'`)
      return value
    case 'number':
      return BigInt.asIntN(64, parseU64(spec.name, value)).toString()
    case 'size': {
      try {
        const r = strtosz(value)
        if (r.warning) warn(`warning: ${r.warning}`)
        return BigInt.asIntN(64, r.value).toString()
      } catch (e) {
        if (!(e instanceof SizeError)) throw e
        if (e.kind === 'range') throw new QemuError(`Value '${value}' is out of range for parameter '${spec.name}'`)
        throw new QemuError(`Parameter '${spec.name}' expects a non-negative number below 2^64\n${SIZE_HINT}`)
      }
    }
    default:
      return value
  }
}

/**
 * Parse an accumulated -o string against an option list. Later values
 * replace earlier ones; a bare "key" means key=on and "nokey" key=off.
 * Errors carry qemu's wording (the caller prefixes the file name).
 */
export function parseCreateOptions (text: string | undefined, specs: readonly CreateOptionSpec[], warn: (m: string) => void = () => undefined): Record<string, string> {
  const values: Record<string, string> = {}
  if (text === undefined) return values
  for (const elem of parseOptsElements(text)) {
    let name = elem.name
    let value: string
    if (elem.value !== undefined) {
      value = elem.value
    } else if (name.startsWith('no')) {
      // QemuOpts reads any bare "noX" as X=off, even where "noX" is an option's
      // own name: qemu-img refuses a bare "nocow" as "Invalid parameter 'cow'"
      name = name.slice(2)
      value = 'off'
    } else {
      value = 'on'
    }
    const spec = specs.find(s => s.name === name)
    if (!spec) throw new QemuError(`Invalid parameter '${name}'`)
    values[name] = normalize(spec, value, warn)
  }
  return values
}

/** Set one value programmatically (size from the command line, -b, -F), normalized like -o values. */
export function setCreateOption (values: Record<string, string>, specs: readonly CreateOptionSpec[], name: string, value: string): void {
  const spec = specs.find(s => s.name === name)
  if (spec) values[name] = normalize(spec, value, () => undefined)
}

function typeLabel (t: CreateOptionSpec['type']): string {
  switch (t) {
    case 'bool': return 'bool (on/off)'
    case 'number': return 'num'
    case 'size': return 'size'
    default: return 'str'
  }
}

/** The option lines of `-o help`, sorted by name as qemu-img sorts them. */
export function optionHelpLines (specs: readonly CreateOptionSpec[]): string {
  const sorted = [...specs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return sorted.map(s => `  ${`${s.name}=<${typeLabel(s.type)}>`.padEnd(22)} - ${s.help}\n`).join('')
}

/**
 * `-o help`: without a target file name only the format's options (and a
 * hint about the protocol's); with one (`protocol` given), both merged.
 */
export function createOptionsHelp (format: string, formatSpecs: readonly CreateOptionSpec[], protocol: readonly CreateOptionSpec[] | null): string {
  if (protocol) return 'Supported options:\n' + optionHelpLines(mergeOptionSpecs(formatSpecs, protocol))
  return `Supported ${format} options:\n` + optionHelpLines(formatSpecs) +
    '\nThe protocol level may support further options.\nSpecify the target filename to include those options.\n'
}

/** The format's options followed by the protocol's that the format does not define itself. */
export function mergeOptionSpecs (formatSpecs: readonly CreateOptionSpec[], protocolSpecs: readonly CreateOptionSpec[]): CreateOptionSpec[] {
  return [...formatSpecs, ...protocolSpecs.filter(p => !formatSpecs.some(f => f.name === p.name))]
}

/** " fmt=qcow2 cluster_size=65536 ...": set options and defaults, in the option list's order. */
export function describeCreateOptions (format: string, values: Record<string, string>, specs: readonly CreateOptionSpec[]): string {
  let s = `fmt=${format}`
  for (const spec of specs) {
    const v = values[spec.name] ?? spec.defaultValue
    if (v === undefined) continue
    s += ` ${spec.name}=${spec.type === 'string' ? v.replace(/,/g, ',,') : v}`
  }
  return s
}
