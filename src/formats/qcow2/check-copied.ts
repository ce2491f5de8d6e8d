// QCOW_OFLAG_COPIED must be set exactly on the active L1/L2 entries whose
// cluster has refcount 1 (writes go in place there, and copy elsewhere). This
// pass runs after the refcounts were settled and compares the flag with the
// stored refcount; repairing rewrites the entry's flag.
import { strerror } from '../../cli/errors.js'
import { CheckAbort, type CheckContext, FIX_ERRORS, FIX_LEAKS, hex64 } from './check-context.js'
import type { StoredRefcounts } from './check-stored.js'
import { joinOffset, L2Reader } from './check-walk.js'
import { OFLAG_COMPRESSED_HI, OFLAG_COPIED_HI } from './layout.js'

export interface CopiedRepairs {
  /** the active L1 table after repairs (when it changed) */
  l1?: Buffer
  /** L2 tables rewritten (their cached copies are stale) */
  l2Offsets: number[]
}

export async function checkCopiedFlags (ctx: CheckContext, stored: StoredRefcounts): Promise<CopiedRepairs> {
  const res = ctx.res
  let repair = false
  if (ctx.fix & FIX_ERRORS) repair = true
  // only leaks asked for: flags are fixed only when the refcounts are known to be right
  else if (ctx.fix & FIX_LEAKS) repair = res.checkErrors === 0 && res.corruptions === 0 && res.leaks === 0

  const out: CopiedRepairs = { l2Offsets: [] }
  const h = ctx.header
  const g = ctx.geo
  const cs = ctx.cs
  if (h.l1Size === 0) return out
  const l1 = Buffer.alloc(h.l1Size * 8)
  await ctx.read(l1, h.l1TableOffset)
  let l1Changed = false

  const refcountOf = async (offset: number | bigint): Promise<number | undefined> => {
    if (typeof offset === 'bigint') return 0
    try {
      return await stored.get(Math.floor(offset / cs))
    } catch {
      return undefined // already reported by the refcount comparison
    }
  }

  const l2Of = (hi: number, lo: number): number | bigint => joinOffset(hi & 0x00ffffff, (lo & 0xfffffe00) >>> 0)
  const tables = new L2Reader(ctx, l1, (hi, lo) => { const o = l2Of(hi, lo); return typeof o === 'number' && o !== 0 && o < ctx.fileSize })
  for (let i = 0; i < h.l1Size; i++) {
    const hi = l1.readUInt32BE(i * 8)
    const lo = l1.readUInt32BE(i * 8 + 4)
    const l2Offset = joinOffset(hi & 0x00ffffff, (lo & 0xfffffe00) >>> 0)
    if (l2Offset === 0) continue
    const rc = typeof l2Offset === 'number' ? stored.cached(Math.floor(l2Offset / cs)) ?? await refcountOf(l2Offset) : 0
    if (rc === undefined) continue
    if ((rc === 1) !== ((hi & OFLAG_COPIED_HI) !== 0)) {
      const rcText = typeof l2Offset === 'number' ? stored.text(Math.floor(l2Offset / cs), rc) : String(rc)
      ctx.say(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${hex64(hi, lo)} refcount=${rcText}`)
      if (repair) {
        l1.writeUInt32BE((rc === 1 ? hi | OFLAG_COPIED_HI : hi & ~OFLAG_COPIED_HI) >>> 0, i * 8)
        l1Changed = true
        res.corruptionsFixed++
      } else {
        res.corruptions++
      }
    }
    if (typeof l2Offset !== 'number' || l2Offset >= ctx.fileSize) continue
    const l2 = await tables.get(i)
    let l2Changed = false
    for (let j = 0; j < g.l2Entries; j++) {
      const e = j * g.l2EntrySize
      const ehi = l2.readUInt32BE(e)
      const elo = l2.readUInt32BE(e + 4)
      if (ehi & OFLAG_COMPRESSED_HI) continue
      const offset = joinOffset(ehi & 0x00ffffff, (elo & 0xfffffe00) >>> 0)
      const zeroFlag = !g.extendedL2 && (elo & 1) !== 0
      const allocated = offset !== 0 || (ctx.hasDataFile && !zeroFlag && (ehi & OFLAG_COPIED_HI) !== 0)
      if (!allocated) continue
      // clusters in an external data file have no refcounts: each belongs to exactly one entry
      const drc = ctx.hasDataFile ? 1 : typeof offset === 'number' ? stored.cached(Math.floor(offset / cs)) ?? await refcountOf(offset) : 0
      if (drc === undefined) continue
      if ((drc === 1) !== ((ehi & OFLAG_COPIED_HI) !== 0)) {
        const rcText = typeof offset === 'number' && !ctx.hasDataFile ? stored.text(Math.floor(offset / cs), drc) : String(drc)
        ctx.say(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${hex64(ehi, elo)} refcount=${rcText}`)
        if (repair) {
          l2.writeUInt32BE((drc === 1 ? ehi | OFLAG_COPIED_HI : ehi & ~OFLAG_COPIED_HI) >>> 0, e)
          l2Changed = true
          res.corruptionsFixed++
        } else {
          res.corruptions++
        }
      }
    }
    if (l2Changed) {
      try {
        await ctx.guard!.write(l2, l2Offset, ['active L2 table'])
      } catch (e) {
        const errno = (e as { errno?: string }).errno ?? 'EIO'
        ctx.say(ctx.dead
          ? `ERROR: Could not write L2 table; metadata overlap check failed: ${strerror(errno)}`
          : `ERROR: Could not write L2 table: ${strerror(errno)}`)
        throw new CheckAbort(strerror(errno), errno)
      }
      out.l2Offsets.push(l2Offset)
    }
  }
  if (l1Changed) {
    await ctx.guard!.write(l1, h.l1TableOffset, ['active L1 table'])
    out.l1 = l1
  }
  if (l1Changed || out.l2Offsets.length > 0) await ctx.store.flush()
  return out
}
