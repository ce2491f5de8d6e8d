// Repairing the snapshot table: entries of a v3 image lacking the extra data
// the format requires (vm_state_size_large, disk_size) get it filled in, and
// the table is written anew, as qemu does: into newly allocated clusters,
// then the header switches to it, then the old table's clusters are freed.
import type { CheckContext } from './check-context.js'
import type { StoredRefcounts } from './check-stored.js'
import { allocateClusters, freeRegion } from './check-alloc.js'
import { encodeSnapshots, type Qcow2Snapshot } from './snapshots.js'
import { writeU64 } from './header.js'

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
