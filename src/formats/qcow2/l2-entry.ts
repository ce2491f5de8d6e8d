// L2 entries as the write path sees them: the two 32-bit words of the
// descriptor plus, with extended L2, the subcluster bitmap (bmLo: allocated,
// bmHi: reads as zero). Pure helpers, no I/O.
import {
  decodeCompressed, entryOffset, OFLAG_COMPRESSED_HI, OFLAG_COPIED_HI, OFLAG_ZERO_LO, type Geometry,
} from './layout.js'

export interface L2Entry { hi: number, lo: number, bmHi: number, bmLo: number }

export const EMPTY_ENTRY: L2Entry = { hi: 0, lo: 0, bmHi: 0, bmLo: 0 }

/** all 32 subclusters */
export const ALL_SUBCLUSTERS = 0xffffffff

export function readEntry (table: Buffer, index: number, g: Geometry): L2Entry {
  const e = index * g.l2EntrySize
  return {
    hi: table.readUInt32BE(e),
    lo: table.readUInt32BE(e + 4),
    bmHi: g.extendedL2 ? table.readUInt32BE(e + 8) : 0,
    bmLo: g.extendedL2 ? table.readUInt32BE(e + 12) : 0,
  }
}

export function writeEntry (table: Buffer, index: number, g: Geometry, v: L2Entry): void {
  const e = index * g.l2EntrySize
  table.writeUInt32BE(v.hi >>> 0, e)
  table.writeUInt32BE(v.lo >>> 0, e + 4)
  if (g.extendedL2) {
    table.writeUInt32BE(v.bmHi >>> 0, e + 8)
    table.writeUInt32BE(v.bmLo >>> 0, e + 12)
  }
}

export function isCompressed (v: L2Entry): boolean { return (v.hi & OFLAG_COMPRESSED_HI) !== 0 }
export function isCopied (v: L2Entry): boolean { return (v.hi & OFLAG_COPIED_HI) !== 0 }
export function hasZeroFlag (v: L2Entry): boolean { return (v.lo & OFLAG_ZERO_LO) !== 0 }

/** "no host cluster" (0 is a valid host offset in an external data file) */
export const NO_HOST = -1

/**
 * Host cluster offset of a non-compressed entry, or NO_HOST. With an
 * external data file, offset 0 with OFLAG_COPIED is guest cluster 0's data.
 */
export function hostOf (v: L2Entry, external = false): number {
  if (isCompressed(v)) return NO_HOST
  const off = entryOffset(v.hi, v.lo)
  if (off !== 0) return off
  return external && isCopied(v) ? 0 : NO_HOST
}

/** An entry pointing to `host` with OFLAG_COPIED (refcount 1), optionally with the zero flag. */
export function plainEntry (host: number, bm?: { bmHi: number, bmLo: number }, zero = false, copied = true): L2Entry {
  const bmHi = bm?.bmHi ?? 0
  const bmLo = bm?.bmLo ?? 0
  if (host < 0) return { hi: 0, lo: zero ? OFLAG_ZERO_LO : 0, bmHi, bmLo }
  return {
    hi: (Math.floor(host / 0x100000000) | (copied ? OFLAG_COPIED_HI : 0)) >>> 0,
    lo: ((host >>> 0) | (zero ? OFLAG_ZERO_LO : 0)) >>> 0,
    bmHi,
    bmLo,
  }
}

export function compressedEntry (descriptor: bigint): L2Entry {
  return { hi: Number(descriptor >> 32n) >>> 0, lo: Number(descriptor & 0xffffffffn) >>> 0, bmHi: 0, bmLo: 0 }
}

/** The host clusters a compressed entry's bytes occupy (each holds one reference for it). */
export function compressedClusters (v: L2Entry, g: Geometry): number[] {
  const d = decodeCompressed(v.hi, v.lo, g)
  const first = Math.floor(d.offset / g.clusterSize)
  const last = Math.floor((d.offset + d.size - 1) / g.clusterSize)
  const out: number[] = []
  for (let c = first; c <= last; c++) out.push(c)
  return out
}

/** Bitmask of subclusters s0..s1 inclusive. */
export function subclusterMask (s0: number, s1: number): number {
  if (s1 - s0 >= 31) return ALL_SUBCLUSTERS
  return ((2 ** (s1 - s0 + 1) - 1) * 2 ** s0) >>> 0
}

/** Is the entry "nothing here" (reads from below)? */
export function isUnallocated (v: L2Entry, g: Geometry): boolean {
  if (isCompressed(v)) return false
  if (g.extendedL2) return v.bmLo === 0 && v.bmHi === 0 && v.hi === 0 && v.lo === 0
  return v.hi === 0 && v.lo === 0
}
