// QemuOpts-style "key=value,key2=value2" strings (-o, --object, --image-opts).
// A doubled comma stands for a literal comma inside a value; a bare first
// word is the value of an implied key (e.g. the object type); a bare later
// word means key=on.
import { UsageError } from './errors.js'

export type KeyValues = Array<[string, string]>

export function parseKeyValues (text: string, impliedKey?: string): KeyValues {
  const out: KeyValues = []
  let i = 0
  let first = true
  while (i <= text.length) {
    // read one element up to an unescaped comma
    let elem = ''
    while (i < text.length) {
      if (text[i] === ',') {
        if (text[i + 1] === ',') { elem += ','; i += 2; continue }
        break
      }
      elem += text[i++]
    }
    i++ // skip the comma (or step past the end)
    if (elem === '' && i > text.length && !first) break
    const eq = elem.indexOf('=')
    if (eq < 0) {
      if (first && impliedKey) out.push([impliedKey, elem])
      else if (elem !== '') out.push([elem, 'on'])
      else if (!first) throw new UsageError('Invalid parameter \'\'')
    } else {
      out.push([elem.slice(0, eq), elem.slice(eq + 1)])
    }
    first = false
  }
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
