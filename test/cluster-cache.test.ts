// The byte-budgeted cluster cache (src/block/cache.ts): loads shared by
// concurrent callers, the budget, and the reuse of evicted buffers, which
// must never hand out a buffer a reader may still copy out of.
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { ClusterCache } from '../src/block/cache.js'

const KiB = 1024

t.test('concurrent gets of one key share one load; the budget evicts the oldest', async t => {
  const cache = new ClusterCache(128 * KiB)
  let loads = 0
  const load = async (): Promise<Buffer> => { loads++; return Buffer.alloc(64 * KiB, loads) }
  const [a, b] = await Promise.all([cache.get(1, 0, load), cache.get(1, 0, load)])
  t.equal(loads, 1)
  t.equal(a, b)
  await cache.get(1, 65536, load)
  await cache.get(1, 131072, load) // evicts key 0
  t.equal(cache.peek(1, 0), undefined)
  t.ok(cache.peek(1, 131072))
})

t.test('an evicted buffer is reused only a turn later, and only if allocate() made it', async t => {
  // 256 KiB: four 64 KiB clusters; a quarter of it (one buffer) may wait for reuse
  const cache = new ClusterCache(256 * KiB)
  const foreign = Buffer.alloc(64 * KiB)
  await cache.get(1, 0, async () => foreign)
  const first = cache.allocate(64 * KiB)
  await cache.get(1, 1, async () => first)
  for (let k = 2; k < 4; k++) await cache.get(1, k, async () => Buffer.alloc(64 * KiB))
  // two more evict keys 0 (foreign) and 1 (first)
  for (let k = 4; k < 6; k++) await cache.get(1, k, async () => Buffer.alloc(64 * KiB))
  t.equal(cache.peek(1, 1), undefined, 'first was evicted')
  const sameTurn = cache.allocate(64 * KiB)
  t.not(sameTurn, first, 'not in the turn it was evicted: a reader may still copy out of it')
  await nextTurn()
  t.equal(cache.allocate(64 * KiB), first, 'reused a turn later')
  const again = cache.allocate(64 * KiB)
  t.not(again, foreign, 'a buffer the cache did not make is never reused')
  t.equal(again.length, 64 * KiB)
})

t.test('spares of another size are dropped, and spares stay within a quarter of the budget', async t => {
  const cache = new ClusterCache(256 * KiB)
  const made: Buffer[] = []
  for (let i = 0; i < 12; i++) {
    const b = cache.allocate(32 * KiB)
    made.push(b)
    await cache.get(1, i, async () => b)
  }
  cache.clear()
  await nextTurn()
  // a quarter of 256 KiB: two 32 KiB buffers kept at most
  const reused = [cache.allocate(32 * KiB), cache.allocate(32 * KiB), cache.allocate(32 * KiB)].filter(b => made.includes(b))
  t.ok(reused.length <= 2, `${reused.length} reused`)
  t.equal(cache.allocate(16 * KiB).length, 16 * KiB)
})
