// Comparing the stored refcounts with the references the walk counted, and
// (when repairing) correcting the stored ones in place. A stored refcount of
// 0 for a cluster in use cannot be fixed in place (its refcount block may not
// even exist): that asks for a rebuild of the whole refcount structure.
import { BlockError, strerror } from '../../cli/errors.js'
import { type CheckContext, FIX_ERRORS, FIX_LEAKS } from './check-context.js'
import type { RefArray } from './check-refs.js'
import type { StoredRefcounts } from './check-stored.js'

export interface CompareOutcome {
  rebuild: boolean
  /** the last cluster that is in use by either count (image end offset) */
  highest: number
}

export async function compareRefcounts (ctx: CheckContext, refs: RefArray, stored: StoredRefcounts, fix: number): Promise<CompareOutcome> {
  const n = Math.max(ctx.fileClusters, refs.length)
  const freed: number[] = []
  let highest = 0
  let rebuild = false
  const per = stored.perBlock
  // one refcount block at a time: the comparison itself stays synchronous
  for (let base = 0; base < n; base += per) {
    let block: Buffer | null = null
    let failure: BlockError | undefined
    try {
      block = Math.floor(base / per) < stored.tableEntries ? await stored.block(Math.floor(base / per)) : null
    } catch (e) {
      if (!(e instanceof BlockError)) throw e
      failure = e
    }
    const end = Math.min(n, base + per)
    for (let i = base; i < end; i++) {
      if (failure) {
        ctx.say(`Can't get refcount for cluster ${i}: ${strerror(failure.errno)}`)
        ctx.res.checkErrors++
        continue
      }
      const s = block ? stored.entryOf(block, i - base) : 0
      const c = refs.get(i)
      if (s > 0 || c > 0) highest = i
      if (s === c) continue
      await mismatch(i, s, c)
    }
  }
  await stored.flush()
  await discardFreed(ctx, freed)
  return { rebuild, highest }

  async function mismatch (i: number, s: number, c: number): Promise<void> {
    let repair = false
    if (s === 0) rebuild = true
    else if (s > c) repair = (fix & FIX_LEAKS) !== 0
    else repair = (fix & FIX_ERRORS) !== 0
    ctx.say(`${repair ? 'Repairing' : s < c ? 'ERROR' : 'Leaked'} cluster ${i} refcount=${stored.text(i, s)} reference=${c}`)
    if (!repair) {
      if (s < c) ctx.res.corruptions++
      else ctx.res.leaks++
      return
    }
    await stored.set(i, c)
    if (s > c) ctx.res.leaksFixed++
    else ctx.res.corruptionsFixed++
    if (c === 0) freed.push(i)
  }
}

/** Clusters whose refcount dropped to 0 are discarded, as qemu does: they read as zeros afterwards. */
async function discardFreed (ctx: CheckContext, clusters: number[]): Promise<void> {
  if (clusters.length === 0) return
  await ctx.store.flush()
  let start = clusters[0]
  let end = start + 1
  for (let k = 1; k <= clusters.length; k++) {
    if (k < clusters.length && clusters[k] === end) { end++; continue }
    await ctx.store.punchHole(start * ctx.cs, (end - start) * ctx.cs)
    if (k < clusters.length) { start = clusters[k]; end = start + 1 }
  }
}
