// In-place updates of single qcow2 header fields. Each helper changes the
// in-memory header, writes just that field and flushes, because every caller
// uses the header write as the commit point of a larger change.
import type { ByteStore } from '../../io/byte-store.js'
import { writeU64, type Qcow2Header } from './header.js'

async function commit (store: ByteStore, buf: Buffer, pos: number): Promise<void> {
  await store.write(buf, pos)
  await store.flush()
}

export async function writeHeaderSize (store: ByteStore, h: Qcow2Header, size: number): Promise<void> {
  const buf = Buffer.alloc(8)
  writeU64(buf, 0, size)
  await commit(store, buf, 24)
  h.size = size
}

export async function writeHeaderL1 (store: ByteStore, h: Qcow2Header, offset: number, entries: number): Promise<void> {
  const buf = Buffer.alloc(12)
  buf.writeUInt32BE(entries, 0)
  writeU64(buf, 4, offset)
  await commit(store, buf, 36)
  h.l1Size = entries
  h.l1TableOffset = offset
}

export async function writeHeaderRefcountTable (store: ByteStore, h: Qcow2Header, offset: number, clusters: number): Promise<void> {
  const buf = Buffer.alloc(12)
  writeU64(buf, 0, offset)
  buf.writeUInt32BE(clusters, 8)
  await commit(store, buf, 48)
  h.refcountTableOffset = offset
  h.refcountTableClusters = clusters
}

/** Rewrite the incompatible feature bits (version 3 only). */
export async function writeHeaderIncompatible (store: ByteStore, h: Qcow2Header, bits: bigint): Promise<void> {
  if (h.version < 3) return
  const buf = Buffer.alloc(8)
  buf.writeBigUInt64BE(bits, 0)
  await commit(store, buf, 72)
  h.incompatible = bits
}

/** Switch to another snapshot table: count and offset in one write (the commit point of a table change). */
export async function writeHeaderSnapshots (store: ByteStore, h: Qcow2Header, count: number, offset: number): Promise<void> {
  const buf = Buffer.alloc(12)
  buf.writeUInt32BE(count, 0)
  writeU64(buf, 4, offset)
  await commit(store, buf, 60)
  h.nbSnapshots = count
  h.snapshotsOffset = offset
}

/** Switch the L1 and refcount tables together (one 20-byte write: l1_table_offset .. refcount_table_clusters). */
export async function writeHeaderTables (store: ByteStore, h: Qcow2Header, l1Offset: number, reftableOffset: number, reftableClusters: number): Promise<void> {
  const buf = Buffer.alloc(20)
  writeU64(buf, 0, l1Offset)
  writeU64(buf, 8, reftableOffset)
  buf.writeUInt32BE(reftableClusters, 16)
  await commit(store, buf, 40)
  h.l1TableOffset = l1Offset
  h.refcountTableOffset = reftableOffset
  h.refcountTableClusters = reftableClusters
}
