// A getopt_long work-alike: qemu-img parses its command lines with glibc's
// getopt_long (argument permutation, unique-prefix long options, bundled short
// options), so scripts rely on those rules and on qemu-img's own wording for
// the two failure cases. Each command describes its options here and receives
// them in command-line order (order matters for `bitmap` actions).
import { UsageError } from './errors.js'

export type ArgKind = 'none' | 'required' | 'optional'

export interface OptionSpec {
  /** Short options as in getopt: "f:hU" (':' after a letter = takes an argument). */
  short: string
  /** Long options: name → argument kind and the short letter it aliases (if any). */
  long?: Record<string, { arg: ArgKind; short?: string }>
  /** Stop at the first non-option (getopt's leading '+'): used for the global options. */
  stopAtNonOption?: boolean
}

export interface ParsedOption {
  /** The short letter, or the long name when the long option has no short alias. */
  name: string
  value?: string
}

export interface ParsedArgs {
  opts: ParsedOption[]
  args: string[]
}

function shortTable (short: string): Map<string, ArgKind> {
  const table = new Map<string, ArgKind>()
  for (let i = 0; i < short.length; i++) {
    const c = short[i]
    if (c === ':' || c === '+') continue
    let kind: ArgKind = 'none'
    if (short[i + 1] === ':') { kind = short[i + 2] === ':' ? 'optional' : 'required' }
    table.set(c, kind)
  }
  return table
}

export function getopt (argv: readonly string[], spec: OptionSpec): ParsedArgs {
  const shorts = shortTable(spec.short)
  const longs = spec.long ?? {}
  const opts: ParsedOption[] = []
  const args: string[] = []
  let i = 0
  while (i < argv.length) {
    const a = argv[i]
    if (a === '--') { args.push(...argv.slice(i + 1)); break }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      const name = a.slice(2, eq < 0 ? undefined : eq)
      let match = Object.prototype.hasOwnProperty.call(longs, name) ? name : undefined
      if (match === undefined) {
        const candidates = Object.keys(longs).filter(k => k.startsWith(name))
        // glibc accepts an abbreviation when it is unique (or all matches are the same option)
        if (candidates.length === 1) match = candidates[0]
      }
      if (match === undefined) throw new UsageError(`unrecognized option '${a}'`)
      const def = longs[match]
      const name2 = def.short ?? match
      if (def.arg === 'none') {
        if (eq >= 0) throw new UsageError(`unrecognized option '${a}'`)
        opts.push({ name: name2 })
      } else if (eq >= 0) {
        opts.push({ name: name2, value: a.slice(eq + 1) })
      } else if (def.arg === 'required') {
        if (i + 1 >= argv.length) throw new UsageError(`missing argument for option '${a}'`)
        opts.push({ name: name2, value: argv[++i] })
      } else {
        opts.push({ name: name2 })
      }
      i++
      continue
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]
        const kind = shorts.get(c)
        if (kind === undefined) throw new UsageError(`unrecognized option '${a}'`)
        if (kind === 'none') { opts.push({ name: c }); continue }
        if (j + 1 < a.length) { opts.push({ name: c, value: a.slice(j + 1) }); break }
        if (kind === 'optional') { opts.push({ name: c }); break }
        if (i + 1 >= argv.length) throw new UsageError(`missing argument for option '${a}'`)
        opts.push({ name: c, value: argv[++i] })
        break
      }
      i++
      continue
    }
    if (spec.stopAtNonOption) { args.push(...argv.slice(i)); break }
    args.push(a)
    i++
  }
  return { opts, args }
}
