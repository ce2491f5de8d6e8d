// Byte-budgeted caches on lru-cache. One ClusterCache can be shared by many
// images (the FUSE server shares one across every view), so keys carry an
// owner id.
import { LRUCache } from 'lru-cache'

let nextOwner = 1
/** A unique id for one cache user (an open image layer). */
export function newCacheOwner (): number { return nextOwner++ }

/** at most this many bytes of evicted buffers are kept for reuse (and a quarter of the budget) */
const MAX_SPARE_BYTES = 16 << 20

export class ClusterCache {
  private readonly lru: LRUCache<string, Buffer>
  private readonly inflight = new Map<string, Promise<Buffer>>()
  /**
   * Buffers made by allocate() can be filled again once evicted: a
   * sequential read of a compressed image otherwise allocates a fresh
   * cluster-sized buffer per cluster, and the garbage collector chases
   * them (~10% of a mount's compressed read). An evicted buffer waits a
   * turn of the event loop before reuse: whoever got it from get() copies
   * out of it in the same turn (callers must not keep cached buffers).
   */
  private readonly ours = new WeakSet<Buffer>()
  private spares: Buffer[] = []
  private justEvicted: Buffer[] = []
  private spareBytes = 0
  private releaseScheduled = false

  constructor (readonly maxBytes: number) {
    this.lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(maxBytes, 1),
      sizeCalculation: (b) => Math.max(b.length, 1),
      dispose: (b) => this.retire(b),
    })
  }

  /** A buffer of `size` bytes (contents undefined) to fill and then cache: an evicted one when there is one. */
  allocate (size: number): Buffer {
    while (this.spares.length > 0) {
      const b = this.spares.pop()!
      this.spareBytes -= b.length
      if (b.length === size) return b
    }
    const b = Buffer.allocUnsafe(size)
    this.ours.add(b)
    return b
  }

  private retire (b: Buffer): void {
    if (!this.ours.has(b) || this.spareBytes + b.length > Math.min(MAX_SPARE_BYTES, this.maxBytes / 4)) return
    this.spareBytes += b.length
    this.justEvicted.push(b)
    if (this.releaseScheduled) return
    this.releaseScheduled = true
    setImmediate(() => {
      this.releaseScheduled = false
      this.spares.push(...this.justEvicted)
      this.justEvicted = []
    })
  }

  /**
   * The cached buffer for (owner, key), or the result of `load` (cached, and
   * shared with concurrent callers asking for the same key meanwhile).
   * Callers must not modify the returned buffer.
   */
  async get (owner: number, key: number, load: () => Promise<Buffer>): Promise<Buffer> {
    const k = `${owner}:${key}`
    const hit = this.lru.get(k)
    if (hit) return hit
    const pending = this.inflight.get(k)
    if (pending) return pending
    const p = load().then(buf => {
      if (this.maxBytes > 0 && buf.length <= this.maxBytes) this.lru.set(k, buf)
      return buf
    }).finally(() => this.inflight.delete(k))
    this.inflight.set(k, p)
    return p
  }

  /** The cached buffer for (owner, key) if it is there now: a hit without a promise. */
  peek (owner: number, key: number): Buffer | undefined {
    return this.lru.get(`${owner}:${key}`)
  }

  /** Replace or drop an entry after the underlying bytes changed. */
  set (owner: number, key: number, buf: Buffer): void {
    if (this.maxBytes > 0 && buf.length <= this.maxBytes) this.lru.set(`${owner}:${key}`, buf)
  }

  delete (owner: number, key: number): void {
    this.lru.delete(`${owner}:${key}`)
  }

  clear (): void { this.lru.clear() }
}

/** Default budgets, like qemu's defaults scaled for a command-line tool. */
export const DEFAULT_METADATA_CACHE = 32 << 20
export const DEFAULT_CLUSTER_CACHE = 32 << 20
