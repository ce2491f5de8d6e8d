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

/**
 * One JSON line; `last` closes the list. (`start` may be a bigint for the
 * empty entry qemu prints when the range is empty.)
 */
export function mapEntryJson (e: Omit<MapEntry, 'start'> & { start: number | bigint }, last: boolean): string {
  let s = `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}`
  if (e.offset !== undefined) s += `, "offset": ${e.offset}`
  return s + (last ? '}]\n' : '},\n')
}
