// Giving freed clusters back to the file system. qemu passes discards down
// to the image file for clusters freed by snapshot operations and by
// shrinking (its defaults: pass-discard-snapshot=on, and shrinking always
// discards), so the file keeps its size but the space is released.
import type { ByteStore } from '../../io/byte-store.js'
import type { RefcountTable } from './refcount-table.js'

/** Punch out those of `candidates` (host cluster indices) whose refcount is now zero. */
export async function punchFreeClusters (store: ByteStore, refs: RefcountTable, candidates: Iterable<number>): Promise<void> {
  const cs = refs.clusterSize
  const free: number[] = []
  for (const c of [...new Set(candidates)].sort((a, b) => a - b)) {
    if (await refs.get(c) === 0) free.push(c)
  }
  for (let k = 0; k < free.length;) {
    let n = 1
    while (k + n < free.length && free[k + n] === free[k] + n) n++
    await store.punchHole(free[k] * cs, n * cs)
    k += n
  }
}
