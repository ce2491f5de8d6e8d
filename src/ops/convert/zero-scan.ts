// Zero detection for convert's sparse output (-S). Which parts of a data
// chunk become holes (or zero writes) follows what qemu-img does, observed
// write by write on real conversions:
//  - the chunk is looked at in 512-byte sectors, as runs of all-zero and
//    non-zero sectors;
//  - run ends are moved to multiples of the alignment (the largest power of
//    two not above -S, in sectors): a data run's end moves up, a zero run's
//    end moves down, and a zero run too short to reach a boundary counts as
//    data;
//  - a zero run at the very start of what is left of the chunk is a hole
//    whatever its length; after data, zero runs shorter than -S are
//    written as part of the data.
// Matching this exactly matters: it decides which 4 KiB blocks of a raw
// target end up allocated.

import { native } from '../../io/native.js'

export const SECTOR = 512
const ZERO_SECTOR = Buffer.alloc(SECTOR)
const ZERO_CHUNK = Buffer.alloc(2 << 20)

/** Is the whole buffer zero? */
export function isAllZero (buf: Buffer): boolean {
  for (let pos = 0; pos < buf.length; pos += ZERO_CHUNK.length) {
    const len = Math.min(ZERO_CHUNK.length, buf.length - pos)
    if (buf.compare(ZERO_CHUNK, 0, len, pos, pos + len) !== 0) return false
  }
  return true
}

/** 1 for each all-zero 512-byte sector of `buf` (whose length is a multiple of 512). */
export function zeroSectorMap (buf: Buffer): Uint8Array {
  const sectors = buf.length / SECTOR
  const map = new Uint8Array(sectors)
  if ((native()?.zeroSectorMap?.(buf, map) ?? -1) >= 0) return map
  if (buf[0] === 0 && isAllZero(buf)) return map.fill(1)
  for (let s = 0, off = 0; s < sectors; s++, off += SECTOR) {
    // most data sectors give themselves away at either end; memcmp the rest
    if (buf[off] !== 0 || buf[off + SECTOR - 1] !== 0) continue
    if (buf.compare(ZERO_SECTOR, 0, SECTOR, off, off + SECTOR) === 0) map[s] = 1
  }
  return map
}

export interface SectorRun {
  zero: boolean
  sectors: number
}

/** Largest power of two not above n (n >= 1). */
export function pow2Floor (n: number): number {
  return 2 ** Math.floor(Math.log2(n))
}

/** One run of same-kind sectors from `pos`, with its end moved to the alignment. */
function alignedRun (map: Uint8Array, pos: number, end: number, absolute: number, align: number): SectorRun {
  const zero = map[pos] === 1
  let len = 1
  while (pos + len < end && (map[pos + len] === 1) === zero) len++
  const left = end - pos
  if (len === left) return { zero, sectors: len }
  const over = (absolute + len) % align
  if (over === 0) return { zero, sectors: len }
  if (zero && len > over) return { zero: true, sectors: len - over }
  return { zero: false, sectors: Math.min(len + align - over, left) }
}

/** The next run to write (data) or skip (zero) from `pos`. */
function nextRun (map: Uint8Array, pos: number, end: number, absolute: number, minSectors: number, align: number): SectorRun {
  const left = end - pos
  const min = Math.min(minSectors, left)
  const first = alignedRun(map, pos, end, absolute, align)
  if (first.zero) return first
  let used = first.sectors
  let checked = used
  while (checked < left) {
    const r = alignedRun(map, pos + checked, end, absolute + checked, align)
    checked += r.sectors
    if (!r.zero) used = checked
    else if (r.sectors >= min) break
  }
  return { zero: false, sectors: used }
}

/**
 * Split a data chunk into data and zero runs. `map` is its zeroSectorMap,
 * `firstSector` the chunk's absolute sector in the target, `minSectors` the
 * -S size in sectors (> 0).
 */
export function sparseRuns (map: Uint8Array, firstSector: number, minSectors: number): SectorRun[] {
  // most chunks of data have no zero sector at all: one data run
  if (map.indexOf(1) < 0) return map.length > 0 ? [{ zero: false, sectors: map.length }] : []
  const align = pow2Floor(minSectors)
  const runs: SectorRun[] = []
  for (let pos = 0; pos < map.length;) {
    const r = nextRun(map, pos, map.length, firstSector + pos, minSectors, align)
    const last = runs[runs.length - 1]
    if (last && last.zero === r.zero) last.sectors += r.sectors
    else runs.push(r)
    pos += r.sectors
  }
  return runs
}
