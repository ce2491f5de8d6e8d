// Rebuilding the refcount structure from the walk's counts, for images whose
// refcount table or blocks cannot be trusted. New refcount blocks and a new
// refcount table go into clusters nothing uses (first fit from the start of
// the file, so holes are reused before the file grows), every block is
// written before the header switches to the new table, and the old structure
// is left behind as leaks for the following pass to free: a crash at any
// point leaves either the old structure or a complete new one.
import { BlockError, strerror } from '../../cli/errors.js'
import { CheckAbort, type CheckContext } from './check-context.js'
import type { RefArray } from './check-refs.js'
import { refcountBlockEntries, setRefcount } from './refcount.js'
import { writeU64 } from './header.js'
import { writeHeaderRefcountTable } from './header-update.js'

/** Refcount table size qemu accepts when opening (8 MiB) */
const MAX_REFTABLE_BYTES = 8 << 20

/** Claim n contiguous unused clusters at or after `from` (refcount 1 each); returns the first one. */
function claim (refs: RefArray, from: number, n: number): number {
  const start = refs.findFree(from, n)
  refs.grow(start + n)
  for (let k = start; k < start + n; k++) refs.set(k, 1)
  return start
}

export async function rebuildRefcounts (ctx: CheckContext, refs: RefArray): Promise<void> {
  const order = ctx.header.refcountOrder
  const cs = ctx.cs
  const perBlock = refcountBlockEntries(ctx.clusterBits, order)
  const blocks = new Map<number, number>() // block index -> cluster
  let table: { cluster: number, clusters: number } | undefined
  // refcount blocks go to the first free cluster inside (or after) the area they describe
  let next = 0

  // Allocating blocks and the table uses clusters, which may need further
  // blocks and a bigger table: repeat until everything describes itself.
  for (;;) {
    let added = false
    for (let b = 0; b * perBlock < refs.length; b++) {
      if (!blocks.has(b) && refs.anyUsed(b * perBlock, (b + 1) * perBlock)) {
        const at = claim(refs, Math.max(next, b * perBlock), 1)
        blocks.set(b, at)
        next = at + 1
        added = true
      }
    }
    const entries = Math.max(...blocks.keys()) + 1
    const clusters = Math.ceil(entries * 8 / cs)
    if (clusters * cs > MAX_REFTABLE_BYTES) throw new CheckAbort('Image is too big for its refcount table', 'EFBIG', ['ERROR rebuilding refcount structure: image too big'])
    if (!table || table.clusters < clusters) {
      if (table) for (let k = table.cluster; k < table.cluster + table.clusters; k++) refs.set(k, 0)
      // the table goes to the first free run from the start of the file
      table = { cluster: claim(refs, 0, clusters), clusters }
      continue
    }
    if (!added) break
  }

  try {
    const block = Buffer.alloc(cs)
    for (const [b, cluster] of [...blocks].sort((x, y) => x[0] - y[0])) {
      block.fill(0)
      const base = b * perBlock
      const n = Math.min(perBlock, refs.length - base)
      for (let k = 0; k < n; k++) {
        const v = refs.get(base + k)
        if (v !== 0) setRefcount(block, k, order, v)
      }
      await ctx.guard!.write(block, cluster * cs, [])
    }
  } catch (e) {
    throw writeFailure('ERROR writing refblock', e)
  }
  const reftable = Buffer.alloc(table.clusters * cs)
  for (const [b, cluster] of blocks) writeU64(reftable, b * 8, cluster * cs)
  try {
    await ctx.guard!.write(reftable, table.cluster * cs, [])
    await ctx.store.flush()
  } catch (e) {
    throw writeFailure('ERROR writing reftable', e)
  }

  // switch the header to the new table in one sector write
  try {
    if (ctx.dead) throw new BlockError('Input/output error', 'EIO')
    await writeHeaderRefcountTable(ctx.store, ctx.header, table.cluster * cs, table.clusters)
  } catch (e) {
    throw writeFailure('ERROR setting reftable', e)
  }
  await ctx.refreshFileSize()
}

function writeFailure (what: string, e: unknown): CheckAbort {
  const errno = e instanceof BlockError ? e.errno : 'EIO'
  return new CheckAbort(`${what}: ${strerror(errno)}`, errno, [`${what}: ${strerror(errno)}`])
}
