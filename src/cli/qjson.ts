// JSON exactly as QEMU prints it (qobject_to_json_pretty). QEMU keeps objects in
// a QDict: a 512-bucket hash table iterated bucket by bucket, the most recently
// inserted key first within a bucket. So the printed key order is a function of
// the insertion order (the QAPI schema's field order), which is the order of
// the keys of the JS objects handed to us.

export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [k: string]: JsonValue | undefined }

const BUCKETS = 512

/** tdb_hash over the key's UTF-8 bytes, mod 2^32. */
export function tdbHash (key: string): number {
  const bytes = Buffer.from(key, 'utf8')
  let v = Math.imul(0x238F13AF, bytes.length) >>> 0
  for (let i = 0; i < bytes.length; i++) {
    v = (v + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0
  }
  return (Math.imul(1103515243, v) + 12345) >>> 0
}

const orderCache = new Map<string, string[]>()

/** Keys of a QDict in QEMU's iteration order, given their insertion order. */
export function qdictOrder (keys: readonly string[]): string[] {
  // the same few key sets come back for every list element (snapshots, bitmaps, chains)
  const cacheKey = keys.join('\0')
  let order = orderCache.get(cacheKey)
  if (!order) {
    order = computeOrder(keys)
    if (orderCache.size < 1000) orderCache.set(cacheKey, order)
  }
  return order
}

function computeOrder (keys: readonly string[]): string[] {
  const buckets = new Map<number, string[]>()
  for (const k of keys) {
    const b = tdbHash(k) % BUCKETS
    const list = buckets.get(b)
    if (list) list.unshift(k); else buckets.set(b, [k])
  }
  return [...buckets.keys()].sort((a, b) => a - b).flatMap(b => buckets.get(b)!)
}

function quote (s: string): string {
  let out = '"'
  for (const ch of s) {
    const cp = ch.codePointAt(0)!
    switch (ch) {
      case '"': out += '\\"'; break
      case '\\': out += '\\\\'; break
      case '\b': out += '\\b'; break
      case '\f': out += '\\f'; break
      case '\n': out += '\\n'; break
      case '\r': out += '\\r'; break
      case '\t': out += '\\t'; break
      default:
        if (cp >= 0x10000) {
          const hi = 0xD800 + ((cp - 0x10000) >> 10)
          const lo = 0xDC00 + ((cp - 0x10000) & 0x3FF)
          out += `\\u${hi.toString(16).toUpperCase()}\\u${lo.toString(16).toUpperCase()}`
        } else if (cp < 0x20 || cp >= 0x7F) {
          out += `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`
        } else out += ch
    }
  }
  return out + '"'
}

function newline (level: number): string { return '\n' + '    '.repeat(level) }

function emit (v: JsonValue, level: number): string {
  if (v === null) return 'null'
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v)
    // QEMU prints doubles with %.17g
    return String(Number(v.toPrecision(17)))
  }
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'string') return quote(v)
  if (Array.isArray(v)) {
    let s = '['
    v.forEach((e, i) => { s += (i ? ',' : '') + newline(level + 1) + emit(e, level + 1) })
    return s + newline(level) + ']'
  }
  const keys = qdictOrder(Object.keys(v).filter(k => v[k] !== undefined))
  let s = '{'
  keys.forEach((k, i) => { s += (i ? ',' : '') + newline(level + 1) + quote(k) + ': ' + emit(v[k]!, level + 1) })
  return s + newline(level) + '}'
}

/** Pretty JSON as qemu-img --output=json prints it (no trailing newline). */
export function toQemuJson (v: JsonValue): string {
  return emit(v, 0)
}
