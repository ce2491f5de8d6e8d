// Sizes of qcow2 metadata, shared by create (where things go) and measure
// (how much space they take). Counts are in clusters unless named otherwise.
import { Geometry } from './layout.js'

/** Refcount table entries per cluster (8-byte entries). */
export function reftableEntriesPerCluster (clusterSize: number): number {
  return clusterSize / 8
}

/** Refcounts per refcount block. */
export function refblockEntries (clusterSize: number, refcountOrder: number): number {
  return (clusterSize * 8) / 2 ** refcountOrder
}

/**
 * Refcount blocks and table clusters needed so that `clusters` clusters plus
 * the refcount structures themselves all have a refcount: the fixed point of
 * blocks = ceil((clusters + blocks + table) / entries per block).
 */
export function refcountMetadataClusters (clusters: number, clusterSize: number, refcountOrder: number): { blocks: number, table: number } {
  const perBlock = refblockEntries(clusterSize, refcountOrder)
  const perTable = reftableEntriesPerCluster(clusterSize)
  let blocks = 0
  let table = 0
  let n = 0
  let last: number
  do {
    last = n
    blocks = Math.ceil((clusters + table + blocks) / perBlock)
    table = Math.ceil(blocks / perTable)
    n = clusters + blocks + table
  } while (n !== last)
  return { blocks, table }
}

/** qemu's limit on the active L1 table (32 MiB). */
export const MAX_L1_BYTES = 32 << 20

/** L1 entries for a guest size. */
export function l1EntriesFor (size: number, geo: Geometry): number {
  return Math.ceil(size / geo.l2Coverage)
}

/**
 * Bytes a fully allocated image of `size` takes, header to last data cluster:
 * header cluster, L2 tables for every cluster, the L1 table, refcount
 * structures for all of it, and the data (`extraClusters` adds e.g. the LUKS
 * header). Returns the metadata part and the data part separately.
 */
export function fullyAllocatedLayout (size: number, geo: Geometry, refcountOrder: number, extraBytes = 0): { meta: number, data: number } {
  const cs = geo.clusterSize
  const dataClusters = Math.ceil(size / cs)
  const l2Tables = Math.ceil(dataClusters / geo.l2Entries)
  const l1Clusters = Math.ceil(l1EntriesFor(size, geo) * 8 / cs)
  const extra = Math.ceil(extraBytes / cs)
  const fixed = 1 + extra + l2Tables + l1Clusters
  const rc = refcountMetadataClusters(fixed + dataClusters, cs, refcountOrder)
  return { meta: (fixed + rc.blocks + rc.table) * cs, data: dataClusters * cs }
}
