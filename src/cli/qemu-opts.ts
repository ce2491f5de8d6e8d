// QemuOpts-style "key=value,key2=value2" strings (-o, --object, --image-opts).
// A doubled comma stands for a literal comma inside a value; a bare first
// word is the value of an implied key (e.g. the object type); a bare later
// word means key=on.
import { UsageError } from './errors.js'

export type KeyValues = Array<[string, string]>

/**
 * One element of a QemuOpts string: a name ends at the first '=' or ',' (no
 * escapes in names); a value runs to the next single comma, ",," standing for
 * a literal comma. `value` is undefined for a bare word ("key", "help").
 */
export interface OptsElement { name: string, value?: string }

export function parseOptsElements (text: string): OptsElement[] {
  const out: OptsElement[] = []
  let pos = 0
  while (pos < text.length) {
    let j = pos
    while (j < text.length && text[j] !== '=' && text[j] !== ',') j++
    const name = text.slice(pos, j)
    if (j < text.length && text[j] === '=') {
      let value = ''
      let k = j + 1
      while (k < text.length) {
        if (text[k] === ',') {
          if (text[k + 1] === ',') { value += ','; k += 2; continue }
          break
        }
        value += text[k++]
      }
      out.push({ name, value })
      pos = k + 1
    } else {
      out.push({ name })
      pos = j + 1
    }
  }
  return out
}

export function parseKeyValues (text: string, impliedKey?: string): KeyValues {
  const out: KeyValues = []
  parseOptsElements(text).forEach((e, i) => {
    if (e.value !== undefined) out.push([e.name, e.value])
    else if (i === 0 && impliedKey) out.push([impliedKey, e.name])
    else if (e.name !== '') out.push([e.name, 'on'])
    else throw new UsageError('Invalid parameter \'\'')
  })
  return out
}

/** Last value wins, as with repeated QemuOpts keys. */
export function toRecord (kv: KeyValues): Record<string, string> {
  const r: Record<string, string> = {}
  for (const [k, v] of kv) r[k] = v
  return r
}

/** Join several -o arguments the way qemu-img does (comma-separated). */
export function joinOptionStrings (parts: string[]): string {
  return parts.join(',')
}

/** A boolean option's value as qemu reads it (on/yes/true/y, off/no/false/n); undefined for anything else. */
export function qemuBool (value: string): boolean | undefined {
  if (value === 'on' || value === 'yes' || value === 'true' || value === 'y') return true
  if (value === 'off' || value === 'no' || value === 'false' || value === 'n') return false
  return undefined
}
