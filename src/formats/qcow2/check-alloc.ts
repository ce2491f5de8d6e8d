// Cluster allocation for the few repairs that need new space outside the
// refcount rebuild (rewriting the snapshot table): first fit over the stored
// refcounts, as qemu's allocator does after a fresh open. A new refcount
// block, when one is needed, goes into the first cluster of the free run it
// describes. Growing the refcount table is left to the rebuild path.
import { CheckAbort, type CheckContext } from './check-context.js'
import type { StoredRefcounts } from './check-stored.js'

/** Allocate n contiguous clusters (refcount 1); returns the first cluster index. */
export async function allocateClusters (ctx: CheckContext, stored: StoredRefcounts, n: number): Promise<number> {
  // every cluster of the run needs a refcount block; missing ones are placed at the start of the run
  let need = n
  for (;;) {
    const start = await findFreeRun(ctx, stored, need)
    const missing = new Set<number>()
    for (let k = start; k < start + need; k++) {
      if (!stored.hasBlockFor(k)) missing.add(Math.floor(k / stored.perBlock))
    }
    if (need < n + missing.size) { need = n + missing.size; continue }
    let first = start
    for (const block of missing) {
      if (block >= stored.tableEntries) {
        throw new CheckAbort('No space left on device', 'ENOSPC', ['Cannot allocate clusters: the refcount table is full'])
      }
      await stored.installBlock(block, first * ctx.cs)
      await stored.set(first, 1)
      first++
    }
    for (let k = first; k < first + n; k++) await stored.set(k, 1)
    await stored.flush()
    await ctx.store.flush()
    return first
  }
}

async function findFreeRun (ctx: CheckContext, stored: StoredRefcounts, n: number): Promise<number> {
  const fileClusters = ctx.fileClusters
  let start = 0
  let run = 0
  for (let i = 0; run < n; i++) {
    const free = i >= fileClusters || (await stored.get(i)) === 0
    if (!free) { run = 0; continue }
    if (run === 0) start = i
    run++
  }
  return start
}

/** Drop one reference from each cluster of [offset, offset+size), discarding those that become free. */
export async function freeRegion (ctx: CheckContext, stored: StoredRefcounts, offset: number, size: number): Promise<void> {
  if (size <= 0) return
  const first = Math.floor(offset / ctx.cs)
  const last = Math.floor((offset + size - 1) / ctx.cs)
  for (let k = first; k <= last; k++) {
    if (await stored.get(k) === 0) {
      // nothing to free (the region was never counted): qemu reports it and changes nothing
      ctx.say('qcow2_free_clusters failed: Invalid argument')
      return
    }
  }
  const freed: number[] = []
  for (let k = first; k <= last; k++) {
    const rc = await stored.get(k)
    await stored.set(k, rc - 1)
    if (rc === 1) freed.push(k)
  }
  await stored.flush()
  await ctx.store.flush()
  for (const k of freed) await ctx.store.punchHole(k * ctx.cs, ctx.cs)
}
