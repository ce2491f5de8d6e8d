// `map` output as qemu-img prints it: a table of the allocated data
// (human), or one JSON object per line for every extent.
import { QemuError } from '../errors.js'
import { hexAlt } from '../cfmt.js'
import type { MapEntry } from '../../ops/map.js'

export const MAP_HUMAN_HEADER = 'Offset          Length          Mapped to       File\n'

/** One human line, or '' for ranges without plain data (holes, zeros, unallocated). */
export function mapEntryHuman (e: MapEntry): string {
  if (e.data && e.offset === undefined) throw new QemuError('File contains external, encrypted or compressed clusters.')
  if (!e.data || e.zero) return ''
  return `${hexAlt(e.start).padEnd(16)}${hexAlt(e.length).padEnd(16)}${hexAlt(e.offset!).padEnd(16)}${e.filename ?? ''}\n`
}

/** A map entry; `start` may be a bigint for the empty entry of an empty range (starts up to INT64_MAX). */
export type PrintableEntry = Omit<MapEntry, 'start'> & { start: number | bigint }

/** One JSON line; `last` closes the list. */
export function mapEntryJson (e: PrintableEntry, last: boolean): string {
  let s = `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}`
  if (e.offset !== undefined) s += `, "offset": ${e.offset}`
  return s + (last ? '}]\n' : '},\n')
}

/**
 * Print a whole map as qemu-img does, entry by entry through `write` (so
 * what was complete is out before an error ends the listing).
 */
export async function writeMap (entries: AsyncIterable<{ entry: PrintableEntry, last: boolean }> | Iterable<{ entry: PrintableEntry, last: boolean }>, json: boolean, write: (s: string) => void): Promise<void> {
  write(json ? '[' : MAP_HUMAN_HEADER)
  for await (const { entry, last } of entries) write(json ? mapEntryJson(entry, last) : mapEntryHuman(entry as MapEntry))
}
