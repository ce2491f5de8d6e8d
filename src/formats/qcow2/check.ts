// `check` for qcow2: detection and repair, with qemu-img 7.2's messages,
// counters and repair strategy.
//
// One pass: count the references the metadata implies (walk), compare them
// with the stored refcounts, then check the OFLAG_COPIED flags of the active
// tables. With repair, leaks and too-low refcounts are corrected in place;
// when the refcount structure itself cannot be trusted it is rebuilt from the
// counts, and the old structure is then freed as leaks. A clean result after
// repair clears the dirty and corrupt header bits.
import type { CheckResult, RepairMode } from '../../block/types.js'
import { BlockError, strerror } from '../../cli/errors.js'
import { CheckAbort, CheckContext, FIX_ERRORS, FIX_LEAKS, zeroCounters } from './check-context.js'
import { compareRefcounts } from './check-compare.js'
import { checkCopiedFlags } from './check-copied.js'
import { readSnapshotTable, walkLayout } from './check-layout.js'
import { RefArray } from './check-refs.js'
import { rebuildRefcounts } from './check-rebuild.js'
import { StoredRefcounts } from './check-stored.js'
import { countReferences } from './check-walk.js'
import { dropStaleBitmaps } from './check-header.js'
import { OverlapGuard } from './check-overlap.js'
import { checkSnapshotTable, rewriteSnapshotTable } from './check-snapshots.js'
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY } from './header.js'
import { writeHeaderIncompatible } from './header-update.js'
import type { Qcow2Image } from './driver.js'

export { CheckAbort }

function fixFlags (mode: RepairMode | undefined): number {
  if (mode === 'all') return FIX_LEAKS | FIX_ERRORS
  if (mode === 'leaks') return FIX_LEAKS
  return 0
}

/**
 * Check (and with `repair`, fix) a qcow2 image. Messages qemu prints while
 * checking come back in `messages`; a check that cannot complete throws
 * CheckAbort (qemu-img: "Check failed: <reason>").
 */
export async function checkQcow2 (img: Qcow2Image, repair?: RepairMode): Promise<CheckResult> {
  const fix = fixFlags(repair)
  if (fix && img.readOnly) throw new BlockError('Cannot repair a read-only image', 'EACCES')
  const ctx = new CheckContext(img.store, img.shared.header, img.geo, fix, !img.readOnly, img.shared)
  try {
    return await runCheck(img, ctx)
  } catch (e) {
    // qemu-img reports any failure as "Check failed: <strerror>", after what was printed so far
    const abort = e instanceof CheckAbort ? e : new CheckAbort((e as Error).message, e instanceof BlockError ? e.errno : 'EIO')
    abort.messages = ctx.messages
    throw abort
  }
}

async function runCheck (img: Qcow2Image, ctx: CheckContext): Promise<CheckResult> {
  const fix = ctx.fix
  await ctx.refreshFileSize()
  if (!img.readOnly) await dropStaleBitmaps(ctx)

  const { snapshots, size: snapshotsSize } = await readSnapshotTable(ctx)
  const { res: snapshotRes, rewrite: rewriteSnapshots } = checkSnapshotTable(ctx, snapshots)

  const layout = walkLayout(ctx, snapshots, snapshotsSize, img.shared.bitmaps)
  const stored = new StoredRefcounts(ctx)
  await stored.load()
  ctx.guard = new OverlapGuard(ctx, stored, layout)
  const refs = new RefArray(ctx.header.refcountOrder, ctx.fileClusters)
  let rebuild = await countReferences(ctx, refs, stored, layout)
  const beforeCompare = { ...ctx.res }
  let outcome = await compareRefcounts(ctx, refs, stored, 0)
  rebuild ||= outcome.rebuild

  if (rebuild && (fix & FIX_ERRORS)) {
    const old = { ...ctx.res }
    ctx.say('Rebuilding refcount structure')
    await rebuildRefcounts(ctx, refs)
    await stored.load()
    // the counts are redone against the new structure (which no longer references the old one)
    ctx.res = { ...zeroCounters(), checkErrors: old.checkErrors, corruptionsFixed: old.corruptionsFixed, leaksFixed: old.leaksFixed }
    refs.clear()
    const stillBroken = await countReferences(ctx, refs, stored, layout)
    const recount = ctx.res
    ctx.res = zeroCounters()
    outcome = await compareRefcounts(ctx, refs, stored, FIX_LEAKS)
    if (stillBroken || outcome.rebuild) ctx.say('ERROR rebuilt refcount structure is still broken')
    const freshLeaks = ctx.res.leaks
    ctx.res = recount
    if (ctx.res.corruptions < old.corruptions) ctx.res.corruptionsFixed += old.corruptions - ctx.res.corruptions
    if (ctx.res.leaks < old.leaks) ctx.res.leaksFixed += old.leaks - ctx.res.leaks
    ctx.res.leaks += freshLeaks
  } else if (fix) {
    if (rebuild) {
      ctx.say('ERROR need to rebuild refcount structures')
      ctx.res.checkErrors++
      throw new CheckAbort('Input/output error', 'EIO')
    }
    if (ctx.res.leaks || ctx.res.corruptions) {
      ctx.res = beforeCompare
      outcome = await compareRefcounts(ctx, refs, stored, fix)
    }
  }

  const copied = await checkCopiedFlags(ctx, stored)
  if (copied.l1) copied.l1.copy(img.l1, 0, 0, Math.min(copied.l1.length, img.l1.length))
  for (const off of copied.l2Offsets) img.shared.metadataCache.delete(img.shared.owner, off)

  if (rewriteSnapshots) {
    img.shared.snapshots = snapshots.map(s => s.entry)
    try {
      await rewriteSnapshotTable(ctx, stored, img.shared.snapshots, snapshotsSize, img.size)
    } catch (e) {
      const errno = e instanceof BlockError ? e.errno : 'EIO'
      ctx.say(`ERROR failed to update snapshot table: ${strerror(errno)}`)
      throw new CheckAbort(strerror(errno), errno)
    }
  }

  const r = ctx.res
  r.corruptions += snapshotRes.corruptions
  r.corruptionsFixed += snapshotRes.corruptionsFixed
  if (fix && r.checkErrors === 0 && r.corruptions === 0) await markClean(ctx)

  return {
    checkErrors: r.checkErrors,
    corruptions: r.corruptions,
    leaks: r.leaks,
    corruptionsFixed: r.corruptionsFixed,
    leaksFixed: r.leaksFixed,
    imageEndOffset: (outcome.highest + 1) * ctx.cs,
    totalClusters: Math.ceil(img.size / ctx.cs),
    allocatedClusters: r.allocated,
    fragmentedClusters: r.fragmented,
    compressedClusters: r.compressed,
    messages: ctx.messages,
  }
}

/** Clear the dirty and corrupt bits once the image is known to be consistent. */
async function markClean (ctx: CheckContext): Promise<void> {
  const h = ctx.header
  if (h.version < 3) return
  const bits = h.incompatible & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT)
  if (!bits) return
  await ctx.store.flush()
  await writeHeaderIncompatible(ctx.store, h, h.incompatible & ~bits)
}

/**
 * Repair everything `check -r all` repairs. For callers that open a dirty
 * image with lazy refcounts read-write (as qemu does on open); the image must
 * be open read-write. Returns the result of the repairing pass.
 */
export async function repairQcow2 (img: Qcow2Image): Promise<CheckResult> {
  return checkQcow2(img, 'all')
}
