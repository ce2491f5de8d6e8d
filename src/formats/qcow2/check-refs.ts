// The reference counts the metadata implies, one entry per host cluster.
// The walk counts references into this array; comparing it with the
// refcounts stored on disk finds leaks and corruptions, and the rebuild
// writes it out as a fresh refcount structure. Entries are as wide as the
// image's refcounts (16 bits by default), so a count saturates exactly where
// the image's own refcount would overflow, and memory stays proportional to
// what the image itself spends on refcounts.
import { maxRefcount } from './refcount.js'

type Store = Uint8Array | Uint16Array | Uint32Array | Float64Array

function allocStore (order: number, n: number): Store {
  if (order <= 3) return new Uint8Array(n)
  if (order === 4) return new Uint16Array(n)
  if (order === 5) return new Uint32Array(n)
  return new Float64Array(n)
}

export class RefArray {
  private data: Store
  private len: number
  /** the largest count an entry can hold (the image's refcount width) */
  readonly max: number

  constructor (readonly order: number, length: number) {
    this.data = allocStore(order, Math.max(length, 16))
    this.len = length
    this.max = maxRefcount(order)
  }

  get length (): number { return this.len }

  get (i: number): number { return i < this.len ? this.data[i] : 0 }

  set (i: number, v: number): void {
    this.grow(i + 1)
    this.data[i] = v
  }

  /** Count one more reference to entry i (< length); false when it is already at the maximum. */
  bump (i: number): boolean {
    const v = this.data[i]
    if (v >= this.max) return false
    this.data[i] = v + 1
    return true
  }

  /** Make the array at least `n` entries long (new entries are 0). */
  grow (n: number): void {
    if (n <= this.len) return
    if (n > this.data.length) {
      const bigger = allocStore(this.order, Math.max(n, this.data.length * 2))
      bigger.set(this.data.subarray(0, this.len) as never)
      this.data = bigger
    }
    this.len = n
  }

  /** Zero every entry, keeping the length. */
  clear (): void { this.data.fill(0) }

  /** Index of the first entry >= from whose next `n` entries are all 0 (may lie past the end). */
  findFree (from: number, n: number): number {
    let start = from
    let run = 0
    for (let i = from; i < this.len; i++) {
      if (this.data[i] === 0) {
        if (run === 0) start = i
        if (++run === n) return start
      } else {
        run = 0
      }
    }
    return run > 0 ? start : Math.max(from, this.len)
  }

  /** true when any entry in [from, to) is non-zero */
  anyUsed (from: number, to: number): boolean {
    const end = Math.min(to, this.len)
    for (let i = from; i < end; i++) if (this.data[i] !== 0) return true
    return false
  }
}
