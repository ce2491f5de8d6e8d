// Byte-budgeted caches on lru-cache. One ClusterCache can be shared by many
// images (the FUSE server shares one across every view), so keys carry an
// owner id.
import { LRUCache } from 'lru-cache'

let nextOwner = 1
/** A unique id for one cache user (an open image layer). */
export function newCacheOwner (): number { return nextOwner++ }

export class ClusterCache {
  private readonly lru: LRUCache<string, Buffer>
  private readonly inflight = new Map<string, Promise<Buffer>>()

  constructor (readonly maxBytes: number) {
    this.lru = new LRUCache<string, Buffer>({
      maxSize: Math.max(maxBytes, 1),
      sizeCalculation: (b) => Math.max(b.length, 1),
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
