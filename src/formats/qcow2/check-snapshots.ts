// The snapshot table's own problems, checked before the refcounts: too many
// snapshots, too much extra data in an entry, v3 entries lacking the extra
// data the format requires (vm_state_size_large, disk_size). Repair drops
// what is too much, fills in what is missing and writes the table anew, as
// qemu does: into newly allocated clusters, then the header switches to it,
// then the old table's clusters are freed.
import { CheckAbort, type CheckContext, type CheckCounters, FIX_ERRORS, zeroCounters } from './check-context.js'
import { MAX_SNAPSHOT_EXTRA, type RawSnapshot } from './check-layout.js'
import type { StoredRefcounts } from './check-stored.js'
import { allocateClusters, freeRegion } from './check-alloc.js'
import { encodeSnapshots, type Qcow2Snapshot } from './snapshots.js'
import { writeU64 } from './header.js'

/** Report (or, with FIX_ERRORS, mark for repair) what is wrong with the table itself. */
export function checkSnapshotTable (ctx: CheckContext, snapshots: RawSnapshot[]): { res: CheckCounters, rewrite: boolean } {
  const res = zeroCounters()
  let rewrite = false
  const repair = (ctx.fix & FIX_ERRORS) !== 0
  const overhang = ctx.header.nbSnapshots - snapshots.length
  if (overhang > 0) {
    if (!repair) {
      ctx.sayReport('ERROR snapshot table too large')
      ctx.say(`You can force-remove all ${overhang} overhanging snapshots with qemu-img check -r all`)
      throw new CheckAbort('File too large', 'EFBIG')
    }
    ctx.say(`Discarding ${overhang} overhanging snapshots`)
    res.corruptionsFixed++
    rewrite = true
  }
  snapshots.forEach((sn, i) => {
    if (sn.extraSize <= MAX_SNAPSHOT_EXTRA) return
    if (!repair) {
      ctx.sayReport(`ERROR failed to read the snapshot table: Too much extra metadata in snapshot table entry ${i}`)
      ctx.say('You can force-remove this extra metadata with qemu-img check -r all')
      throw new CheckAbort('File too large', 'EFBIG')
    }
    ctx.say(`Discarding too much extra metadata in snapshot table entry ${i} (${sn.extraSize} > ${MAX_SNAPSHOT_EXTRA})`)
    res.corruptionsFixed++
    rewrite = true
  })
  snapshots.forEach((sn, i) => {
    if (!sn.incomplete) return
    if (repair) {
      ctx.say(`Repairing snapshot table entry ${i} is incomplete`)
      res.corruptionsFixed++
      rewrite = true
    } else {
      ctx.say(`ERROR snapshot table entry ${i} is incomplete`)
      res.corruptions++
    }
  })
  return { res, rewrite }
}

export async function rewriteSnapshotTable (ctx: CheckContext, stored: StoredRefcounts, snapshots: Qcow2Snapshot[],
  oldSize: number, diskSize: number): Promise<void> {
  for (const s of snapshots) if (s.diskSize === undefined) s.diskSize = diskSize
  const table = encodeSnapshots(snapshots)
  const clusters = Math.ceil(table.length / ctx.cs)
  const at = (await allocateClusters(ctx, stored, clusters)) * ctx.cs
  await ctx.guard!.write(table, at, [])
  await ctx.store.flush()

  const oldOffset = ctx.header.snapshotsOffset
  const hdr = Buffer.alloc(12)
  hdr.writeUInt32BE(snapshots.length, 0)
  writeU64(hdr, 4, at)
  await ctx.write(hdr, 60)
  await ctx.store.flush()
  ctx.header.snapshotsOffset = at
  await freeRegion(ctx, stored, oldOffset, oldSize)
  await ctx.refreshFileSize()
}
