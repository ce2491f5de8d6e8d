// `map`: the allocation of an image through its backing chain, as qemu-img
// reports it. Extents come from Image.blockStatus; neighbours with the same
// depth and flags (and contiguous host offsets) merge into one entry.
import { WIDE_STATUS, type Extent, type Image } from '../block/types.js'

export interface MapEntry {
  start: number
  length: number
  /** 0 = the image itself, 1 = its backing file, ... */
  depth: number
  /** allocated in the layer at `depth` */
  present: boolean
  zero: boolean
  data: boolean
  /** where the bytes are in `filename`, when they are stored plainly */
  offset?: number
  filename?: string
}

export function entryFromExtent (e: Extent): MapEntry {
  const entry: MapEntry = {
    start: e.offset,
    length: e.length,
    depth: e.depth,
    present: e.kind !== 'unallocated',
    // an unallocated range reads as zeros: nothing below it, or past the end of the backing file
    zero: e.kind !== 'data' || e.zero === true,
    data: e.kind === 'data',
  }
  if (e.hostOffset !== undefined) {
    entry.offset = e.hostOffset
    entry.filename = e.store?.filename
  }
  return entry
}

/** qemu's rule for folding `next` into `curr`. */
export function mergeable (curr: MapEntry, next: MapEntry): boolean {
  if (curr.length === 0) return false
  if (curr.depth !== next.depth || curr.present !== next.present || curr.zero !== next.zero || curr.data !== next.data) return false
  if ((curr.offset === undefined) !== (next.offset === undefined)) return false
  return curr.offset === undefined || curr.offset + curr.length === next.offset
}

/**
 * The merged entries of [start, end), in order, each with whether it is the
 * last. An entry is complete (and yielded) once the next one is known not to
 * merge with it, so an error from blockStatus comes after everything qemu
 * would have printed. An empty range yields one entry of length 0 at
 * `start` (qemu-img prints it in JSON).
 */
export async function * mapImage (img: Image, start: number, end: number): AsyncGenerator<{ entry: MapEntry, last: boolean }> {
  let curr: MapEntry = { start, length: 0, depth: 0, present: false, zero: false, data: false }
  let pos = start
  while (pos < end) {
    // (wide: neighbours merge here anyway, so an answer need not stop at each L2 table)
    const next = entryFromExtent(await img.blockStatus(pos, end - pos, WIDE_STATUS))
    pos += next.length
    if (mergeable(curr, next)) {
      curr.length += next.length
      continue
    }
    if (curr.length > 0) yield { entry: curr, last: false }
    curr = next
  }
  yield { entry: curr, last: true }
}
