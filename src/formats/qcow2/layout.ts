// Geometry of a qcow2 image and decoding of L1/L2 entries.
// L2 entries are 64 bits (128 with extended L2: the second word is the
// subcluster bitmap: bits 0-31 "allocated", bits 32-63 "reads as zero").

export const L1E_OFFSET_MASK_HI = 0x00ffffff // bits 32..55
export const L1E_OFFSET_MASK_LO = 0xfffffe00 // bits 9..31
export const OFLAG_COPIED_HI = 0x80000000
export const OFLAG_COMPRESSED_HI = 0x40000000
export const OFLAG_ZERO_LO = 0x1

export class Geometry {
  readonly clusterSize: number
  /** entries per L2 table */
  readonly l2Entries: number
  readonly l2EntrySize: number
  readonly subclusters: number
  readonly subclusterSize: number
  /** bytes of guest space one L2 table covers */
  readonly l2Coverage: number
  /** bit position where a compressed entry's sector count starts */
  readonly csizeShift: number

  constructor (readonly clusterBits: number, readonly extendedL2: boolean) {
    this.clusterSize = 2 ** clusterBits
    this.l2EntrySize = extendedL2 ? 16 : 8
    this.l2Entries = this.clusterSize / this.l2EntrySize
    this.subclusters = extendedL2 ? 32 : 1
    this.subclusterSize = this.clusterSize / this.subclusters
    this.l2Coverage = this.l2Entries * this.clusterSize
    this.csizeShift = 62 - (clusterBits - 8)
  }

  l1Index (offset: number): number { return Math.floor(offset / this.l2Coverage) }
  l2Index (offset: number): number { return Math.floor(offset / this.clusterSize) % this.l2Entries }
  /** L1 entries needed to cover `size` bytes */
  l1EntriesFor (size: number): number { return Math.ceil(size / this.l2Coverage) }
}

/** bits 9..55 of a table entry: an L2 table or data cluster offset */
export function entryOffset (hi: number, lo: number): number {
  return (hi & L1E_OFFSET_MASK_HI) * 0x100000000 + ((lo & L1E_OFFSET_MASK_LO) >>> 0)
}

/** bits that must be zero in an L1 entry (1..8 and 56..62) */
export function l1ReservedBits (hi: number, lo: number): boolean {
  return (lo & 0x1ff) !== 0 || (hi & 0x7f000000) !== 0
}

export interface CompressedDescriptor { offset: number, size: number }

/** Host offset and byte length of a compressed cluster's data. */
export function decodeCompressed (hi: number, lo: number, g: Geometry): CompressedDescriptor {
  const entry = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo >>> 0)
  const shift = BigInt(g.csizeShift)
  const offset = Number(entry & ((1n << shift) - 1n))
  const sectors = Number((entry >> shift) & ((1n << BigInt(g.clusterBits - 8)) - 1n)) + 1
  return { offset, size: sectors * 512 - (offset % 512) }
}

export function encodeCompressed (offset: number, size: number, g: Geometry): bigint {
  const sectors = Math.ceil((offset % 512 + size) / 512) - 1
  return (1n << 62n) | (BigInt(sectors) << BigInt(g.csizeShift)) | BigInt(offset)
}

export type SubclusterKind =
  | 'unallocated' // read from the backing file (with extended L2 maybe inside an allocated cluster: host set)
  | 'zero' // reads as zero (zero flag / zero bit), maybe with a preallocated host cluster
  | 'normal' // plain data at host offset
  | 'compressed'
  | 'invalid' // an extended L2 bitmap that contradicts itself or the entry

export interface SubclusterStatus {
  kind: SubclusterKind
  /** host offset of the subcluster when its cluster has one (normal, zero, unallocated); undefined if none */
  host?: number
  /** number of consecutive subclusters in this cluster (from the queried one) with the same kind */
  count: number
}

export interface EntryContext {
  /** version 3 images have the standard zero flag (bit 0) */
  zeroFlag: boolean
  /** an external data file is used: host offset 0 with the COPIED flag is a real cluster */
  dataFile: boolean
}

/** Host cluster offset of a standard (not compressed) L2 entry, or undefined when it has none. */
export function standardHost (hi: number, lo: number, dataFile: boolean): number | undefined {
  const host = entryOffset(hi, lo)
  if (host !== 0) return host
  // offset 0 names a cluster only in an external data file, marked by the COPIED flag
  return dataFile && (hi & OFLAG_COPIED_HI) !== 0 ? 0 : undefined
}

/**
 * Status of subcluster `sc` of the cluster whose entry is (hi, lo[, bitmap]).
 * With standard L2 there is one "subcluster" per cluster.
 */
export function subclusterStatus (g: Geometry, hi: number, lo: number, bmHi: number, bmLo: number, sc: number, ctx: EntryContext): SubclusterStatus {
  if (hi & OFLAG_COMPRESSED_HI) return { kind: 'compressed', count: g.subclusters - sc }
  const host = standardHost(hi, lo, ctx.dataFile)
  if (!g.extendedL2) {
    if (ctx.zeroFlag && (lo & OFLAG_ZERO_LO)) return { kind: 'zero', host, count: 1 }
    return host === undefined ? { kind: 'unallocated', count: 1 } : { kind: 'normal', host, count: 1 }
  }
  // extended L2: bmLo = allocation bits, bmHi = zero bits. A contradiction
  // anywhere in the bitmap makes the whole entry invalid, as in qemu.
  if ((bmLo & bmHi) !== 0 || (host === undefined && bmLo !== 0)) return { kind: 'invalid', count: 1 }
  const kindOf = (i: number): SubclusterKind => {
    if ((bmLo >>> i) & 1) return 'normal'
    if ((bmHi >>> i) & 1) return 'zero'
    return 'unallocated'
  }
  const kind = kindOf(sc)
  let count = 1
  while (sc + count < g.subclusters && kindOf(sc + count) === kind) count++
  return { kind, host: host === undefined ? undefined : host + sc * g.subclusterSize, count }
}
