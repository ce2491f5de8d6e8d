// Emptying a qcow2 image (commit without -d): afterwards every cluster reads
// from the backing file again. Like qemu, an image that has nothing worth
// keeping besides its data (version 3, no snapshots, no bitmaps, no LUKS
// header, no external data file) is rebuilt from scratch — header, refcount
// table at cluster 1, one refcount block at cluster 2, an empty L1 table
// from cluster 3, the file cut after it — and any other image has all its
// clusters discarded (L2 entries cleared, freed space punched out of the file).
//
// The rebuild goes through two generations of metadata so that a crash at
// any point leaves a valid image: first a complete empty set of tables past
// the end of everything in use (one header write switches to it, the old
// structures are then merely unreferenced), then the final set at the start
// of the file (the clusters it uses are free under the first generation),
// a second header switch, and the truncation.
import { CRYPT_LUKS, INCOMPAT_DATA_FILE, writeU64 } from './header.js'
import { writeHeaderTables } from './header-update.js'
import { rewriteHeader } from './header-rewrite.js'
import { EMPTY_ENTRY, compressedClusters, hostOf, isCompressed, NO_HOST, readEntry, writeEntry } from './l2-entry.js'
import { setRefcount } from './refcount.js'
import { newCacheOwner } from '../../block/cache.js'
import { TreeRefcounts } from './snapshot-refs.js'
import { Qcow2Writer } from './write.js'
import type { Qcow2Image } from './driver.js'

export async function makeEmpty (img: Qcow2Image, w: Qcow2Writer): Promise<void> {
  // everything on disk (and the lazy-refcounts dirty bit cleared) before the tables change
  await w.flush()
  const h = img.header
  const l1Clusters = Math.ceil(h.l1Size * 8 / img.geo.clusterSize)
  const rebuild = h.version >= 3 && h.nbSnapshots === 0 && (h.bitmapsExt?.nbBitmaps ?? 0) === 0 &&
    h.cryptMethod !== CRYPT_LUKS && (h.incompatible & INCOMPAT_DATA_FILE) === 0n && 3 + l1Clusters <= w.refs.perBlock
  if (rebuild) {
    await w.mutex.run(() => rebuildEmpty(img, w, l1Clusters))
  } else {
    await w.mutex.run(() => discardAll(img, w))
  }
}

/** Clear every L2 entry; clusters that lose their last reference are freed and punched out. */
async function discardAll (img: Qcow2Image, w: Qcow2Writer): Promise<void> {
  const g = img.geo
  const cs = g.clusterSize
  const external = (img.header.incompatible & INCOMPAT_DATA_FILE) !== 0n
  const refs = new TreeRefcounts(img, w)
  for (let l1i = 0; l1i < img.l1.length / 8; l1i++) {
    // changed tables are written now and then, not all held in memory
    if (w.tables.size >= 64) await refs.flush()
    const current = await w.currentTable(l1i)
    if (!current) continue
    let table: Buffer | null = null
    for (let j = 0; j < g.l2Entries; j++) {
      const e = readEntry(table ?? current, j, g)
      if (e.hi === 0 && e.lo === 0 && e.bmHi === 0 && e.bmLo === 0) continue
      // a table shared with a snapshot is copied first, as for any write
      table ??= await w.tableForWrite(l1i)
      if (isCompressed(e)) {
        for (const c of compressedClusters(e, g)) await refs.add(c, -1)
      } else if (!external && hostOf(e) !== NO_HOST) {
        await refs.add(hostOf(e) / cs, -1)
      }
      writeEntry(table, j, g, EMPTY_ENTRY)
    }
  }
  await refs.flush()
  await refs.punchFreed()
}

interface TableSet {
  reftable: number
  reftableClusters: number
  /** refcount block index -> cluster */
  blocks: Map<number, number>
  l1: number
}

/** Rebuild the image as an empty one; runs under the writer's mutex with nothing dirty. */
async function rebuildEmpty (img: Qcow2Image, w: Qcow2Writer, l1Clusters: number): Promise<void> {
  const store = img.store
  const cs = img.geo.clusterSize
  const per = w.refs.perBlock
  const used = Math.ceil(Math.max(await store.size(), await w.alloc.usedEnd()) / cs)
  // generation 1: past everything in use (and past where generation 2 goes)
  const gen1 = planTables(Math.max(used, 3 + l1Clusters), l1Clusters, per, cs)
  await writeTables(img, w, gen1, l1Clusters)
  // generation 2: the layout qemu leaves, in clusters generation 1 leaves free,
  // and the whole header cluster rewritten as qemu writes it
  const gen2: TableSet = { reftable: 1, reftableClusters: 1, blocks: new Map([[0, 2]]), l1: 3 }
  await writeTables(img, w, gen2, l1Clusters, true)
  await store.truncate((3 + l1Clusters) * cs)
  await store.flush()
  // the image now starts afresh: new in-memory tables, caches and writer
  img.l1 = Buffer.alloc(img.header.l1Size * 8)
  img.shared.owner = newCacheOwner()
  img.shared.writer = await Qcow2Writer.open(img)
}

/**
 * Where a complete empty table set goes when it starts at cluster `start`:
 * the refcount table, then the refcount blocks that describe cluster 0 and
 * the set itself, then the L1 table.
 */
function planTables (start: number, l1Clusters: number, per: number, cs: number): TableSet {
  let t = 1
  for (;;) {
    let blocks: number[] = []
    for (let b = 1; ; b = blocks.length) {
      const end = start + t + b + l1Clusters
      const set = new Set<number>([0])
      for (let bi = Math.floor(start / per); bi <= Math.floor((end - 1) / per); bi++) set.add(bi)
      blocks = [...set].sort((x, y) => x - y)
      if (blocks.length === b) break
    }
    const need = Math.ceil((blocks[blocks.length - 1] + 1) * 8 / cs)
    if (need <= t) {
      return {
        reftable: start,
        reftableClusters: t,
        blocks: new Map(blocks.map((bi, k) => [bi, start + t + k])),
        l1: start + t + blocks.length,
      }
    }
    t = need
  }
}

/** Write a table set (every cluster it uses counted once, cluster 0 too) and switch the header to it. */
async function writeTables (img: Qcow2Image, w: Qcow2Writer, set: TableSet, l1Clusters: number, wholeHeader = false): Promise<void> {
  const store = img.store
  const cs = img.geo.clusterSize
  const per = w.refs.perBlock
  const order = w.refs.order
  const usedClusters = [0, ...range(set.reftable, set.reftableClusters), ...set.blocks.values(), ...range(set.l1, l1Clusters)]
  const blockBufs = new Map<number, Buffer>()
  for (const bi of set.blocks.keys()) blockBufs.set(bi, Buffer.alloc(cs))
  for (const c of usedClusters) setRefcount(blockBufs.get(Math.floor(c / per))!, c % per, order, 1)
  const reftable = Buffer.alloc(set.reftableClusters * cs)
  for (const [bi, c] of set.blocks) writeU64(reftable, bi * 8, c * cs)
  if (l1Clusters > 0) await store.write(Buffer.alloc(l1Clusters * cs), set.l1 * cs)
  for (const [bi, c] of set.blocks) await store.write(blockBufs.get(bi)!, c * cs)
  await store.write(reftable, set.reftable * cs)
  await store.flush()
  if (wholeHeader) {
    await rewriteHeader(img, h => {
      h.l1TableOffset = set.l1 * cs
      h.refcountTableOffset = set.reftable * cs
      h.refcountTableClusters = set.reftableClusters
    })
  } else {
    await writeHeaderTables(store, img.header, set.l1 * cs, set.reftable * cs, set.reftableClusters)
  }
}

function range (start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i)
}
