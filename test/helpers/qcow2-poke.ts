// Breaking qcow2 images on purpose: locate structures through the header
// and poke bytes, so tests can build the corruptions `check` must find.
import fs from 'node:fs'

export interface Qcow2Layout {
  clusterSize: number
  refcountBits: number
  l1Offset: number
  reftableOffset: number
  reftableClusters: number
  snapshotsOffset: number
  /** offset of refcount block 0 */
  refblock0: number
  /** offset of the L2 table of L1 entry 0 */
  l2Offset0: number
}

function readAt (file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(length)
    fs.readSync(fd, buf, 0, length, offset)
    return buf
  } finally {
    fs.closeSync(fd)
  }
}

export function pokeBytes (file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+')
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}

export function readU64 (file: string, offset: number): bigint {
  return readAt(file, offset, 8).readBigUInt64BE()
}

export function pokeU64 (file: string, offset: number, value: bigint): void {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(value)
  pokeBytes(file, offset, b)
}

export function pokeU32 (file: string, offset: number, value: number): void {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(value)
  pokeBytes(file, offset, b)
}

const OFFSET_MASK = 0x00fffffffffffe00n

export function layoutOf (file: string): Qcow2Layout {
  const h = readAt(file, 0, 104)
  const clusterSize = 2 ** h.readUInt32BE(20)
  const l1Offset = Number(h.readBigUInt64BE(40))
  const reftableOffset = Number(h.readBigUInt64BE(48))
  const version = h.readUInt32BE(4)
  return {
    clusterSize,
    refcountBits: version >= 3 ? 2 ** h.readUInt32BE(96) : 16,
    l1Offset,
    reftableOffset,
    reftableClusters: h.readUInt32BE(56),
    snapshotsOffset: Number(h.readBigUInt64BE(64)),
    refblock0: Number(readU64(file, reftableOffset) & ~0x1ffn),
    l2Offset0: Number(readU64(file, l1Offset) & OFFSET_MASK),
  }
}

/** Set the stored refcount of a cluster covered by refcount block 0 (16-bit refcounts). */
export function setRefcount16 (file: string, cluster: number, value: number): void {
  const l = layoutOf(file)
  if (l.refcountBits !== 16) throw new Error('setRefcount16 needs 16-bit refcounts')
  const b = Buffer.alloc(2)
  b.writeUInt16BE(value)
  pokeBytes(file, l.refblock0 + cluster * 2, b)
}

/** Entry `index` of the L2 table of L1 entry 0 (standard 8-byte entries). */
export function l2EntryOffset (file: string, index: number): number {
  return layoutOf(file).l2Offset0 + index * 8
}
