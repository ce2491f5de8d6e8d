// The snapshot table as qemu prints it (info and snapshot -l).
import type { JsonValue } from '../qjson.js'
import { sizeToStr } from '../sizes.js'

type Obj = { [k: string]: JsonValue | undefined }

function pad2 (n: number): string { return String(n).padStart(2, '0') }

function localDate (sec: number): string {
  const d = new Date(sec * 1000)
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
}

function clock (sec: number, nsec: number): string {
  const h = Math.floor(sec / 3600)
  const m = Math.floor((sec % 3600) / 60)
  const s = sec % 60
  return `${pad2(h)}:${pad2(m)}:${pad2(s)}.${String(Math.floor(nsec / 1e6)).padStart(3, '0')}`
}

export const SNAPSHOT_HEADER = `${'ID'.padEnd(10)}${'TAG'.padEnd(17)}${'VM SIZE'.padStart(8)}${'DATE'.padStart(20)}${'VM CLOCK'.padStart(13)}${'ICOUNT'.padStart(11)}\n`

/** printf's %-Ns pads to N bytes, not characters */
function padBytes (s: string, width: number): string {
  return s + ' '.repeat(Math.max(0, width - Buffer.byteLength(s, 'utf8')))
}

export function snapshotRow (s: Obj): string {
  const vmSize = s['vm-state-size'] as number
  const icount = s.icount === undefined ? '' : String(s.icount)
  return `${padBytes(String(s.id), 9)} ${padBytes(String(s.name), 16)} ${sizeToStr(vmSize).padStart(8)}${localDate(s['date-sec'] as number).padStart(20)}${clock(s['vm-clock-sec'] as number, s['vm-clock-nsec'] as number).padStart(13)}${icount.padStart(11)}\n`
}

export function snapshotTable (snaps: Obj[]): string {
  return SNAPSHOT_HEADER + snaps.map(snapshotRow).join('')
}
