// The internal snapshot table: one entry per snapshot, each 8-byte aligned.
import { readU64, writeU64 } from './header.js'

export interface Qcow2Snapshot {
  l1TableOffset: number
  /** the exact field as read (offsets past 2^53 are Infinity in l1TableOffset) */
  l1TableOffsetExact?: bigint
  l1Size: number
  id: string
  name: string
  dateSec: number
  dateNsec: number
  vmClockNsec: number
  vmStateSize: number
  /** guest disk size when the snapshot was taken (extra data), if recorded */
  diskSize?: number
  icount?: number
  /** extra data bytes beyond the fields we know, kept when rewriting */
  extraUnknown: Buffer
}

export class SnapshotTableError extends Error {}

/** qemu keeps names as C strings: a NUL byte ends them */
export function cString (b: Buffer): string {
  const nul = b.indexOf(0)
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8')
}

/** Fixed part of an entry before the extra data */
const FIXED = 40
/** qemu's limits: extra data per entry, and the whole table */
export const MAX_EXTRA_DATA = 1024
export const MAX_TABLE_BYTES = 64 << 20

/** Bytes of the variable parts that follow the fixed header at `pos`. */
function variableLength (buf: Buffer, pos: number): { extraLen: number, idLen: number, nameLen: number } {
  return { idLen: buf.readUInt16BE(pos + 12), nameLen: buf.readUInt16BE(pos + 14), extraLen: buf.readUInt32BE(pos + 36) }
}

/** Decode one entry whose bytes (at least FIXED + extra + id + name) start at `pos`. */
function decodeEntry (buf: Buffer, pos: number): Qcow2Snapshot {
  const { extraLen, idLen, nameLen } = variableLength(buf, pos)
  const extra = buf.subarray(pos + FIXED, pos + FIXED + extraLen)
  let vmStateSize = buf.readUInt32BE(pos + 32)
  let diskSize: number | undefined
  let icount: number | undefined
  if (extraLen >= 8) vmStateSize = readU64(extra, 0)
  if (extraLen >= 16) diskSize = readU64(extra, 8)
  if (extraLen >= 24) {
    const v = extra.readBigInt64BE(16)
    icount = v < 0n ? undefined : Number(v)
  }
  const idStart = pos + FIXED + extraLen
  return {
    l1TableOffset: readU64(buf, pos),
    l1TableOffsetExact: buf.readBigUInt64BE(pos),
    l1Size: buf.readUInt32BE(pos + 8),
    dateSec: buf.readUInt32BE(pos + 16),
    dateNsec: buf.readUInt32BE(pos + 20),
    vmClockNsec: readU64(buf, pos + 24),
    vmStateSize,
    diskSize,
    icount,
    extraUnknown: Buffer.from(extra.subarray(Math.min(extraLen, 24))),
    id: cString(buf.subarray(idStart, idStart + idLen)),
    name: cString(buf.subarray(idStart + idLen, idStart + idLen + nameLen)),
  }
}

function entryLength (buf: Buffer, pos: number): number {
  const { extraLen, idLen, nameLen } = variableLength(buf, pos)
  return (FIXED + extraLen + idLen + nameLen + 7) & ~7
}

/**
 * The checks qemu makes while reading entry `index` that ends `end` bytes
 * into the table, with its messages.
 */
function checkEntry (buf: Buffer, pos: number, index: number, end: number, count: number): void {
  if (buf.readUInt32BE(pos + 36) > MAX_EXTRA_DATA) {
    throw new SnapshotTableError(`Too much extra metadata in snapshot table entry ${index}\n` +
      'You can force-remove this extra metadata with qemu-img check -r all')
  }
  if (end > MAX_TABLE_BYTES) {
    throw new SnapshotTableError('Snapshot table is too big\n' +
      `You can force-remove all ${count - index} overhanging snapshots with qemu-img check -r all`)
  }
}

/** Decode `count` entries from `buf` (the table's bytes, read from snapshots_offset). */
export function decodeSnapshots (buf: Buffer, count: number): { snapshots: Qcow2Snapshot[], tableSize: number } {
  const snapshots: Qcow2Snapshot[] = []
  let pos = 0
  for (let i = 0; i < count; i++) {
    if (pos + FIXED > buf.length) throw new SnapshotTableError('Snapshot table is truncated')
    const len = entryLength(buf, pos)
    checkEntry(buf, pos, i, pos + len, count)
    if (pos + len > buf.length) throw new SnapshotTableError('Snapshot table is truncated')
    snapshots.push(decodeEntry(buf, pos))
    pos += len
  }
  return { snapshots, tableSize: pos }
}

/**
 * Read and decode the table through `read` (which yields zeros past the end
 * of the file, as qemu reads them), a window at a time: memory stays bounded
 * by qemu's 64 MiB table limit whatever nb_snapshots says.
 */
export async function readSnapshotTable (read: (buf: Buffer, offset: number) => Promise<void>, offset: number, count: number): Promise<Qcow2Snapshot[]> {
  const WINDOW = 1 << 20
  let win = Buffer.alloc(0)
  let winStart = 0 // table-relative offset of win[0]
  const ensure = async (pos: number, len: number): Promise<number> => {
    if (pos >= winStart && pos + len <= winStart + win.length) return pos - winStart
    win = Buffer.alloc(Math.max(len, WINDOW))
    winStart = pos
    await read(win, offset + pos)
    return 0
  }
  const snapshots: Qcow2Snapshot[] = []
  let pos = 0
  for (let i = 0; i < count; i++) {
    let at = await ensure(pos, FIXED)
    const len = entryLength(win, at)
    checkEntry(win, at, i, pos + len, count)
    at = await ensure(pos, len)
    snapshots.push(decodeEntry(win, at))
    pos += len
  }
  return snapshots
}

/** Encode the whole table; extra data always carries vm_state_size_large, disk_size and icount. */
export function encodeSnapshots (snapshots: Qcow2Snapshot[]): Buffer {
  const parts: Buffer[] = []
  for (const s of snapshots) {
    const id = Buffer.from(s.id, 'utf8')
    const name = Buffer.from(s.name, 'utf8')
    const extra = Buffer.alloc(24 + s.extraUnknown.length)
    writeU64(extra, 0, s.vmStateSize)
    writeU64(extra, 8, s.diskSize ?? 0)
    extra.writeBigInt64BE(s.icount === undefined ? -1n : BigInt(s.icount), 16)
    s.extraUnknown.copy(extra, 24)
    const len = FIXED + extra.length + id.length + name.length
    const e = Buffer.alloc((len + 7) & ~7)
    writeU64(e, 0, s.l1TableOffset)
    e.writeUInt32BE(s.l1Size, 8)
    e.writeUInt16BE(id.length, 12)
    e.writeUInt16BE(name.length, 14)
    e.writeUInt32BE(s.dateSec, 16)
    e.writeUInt32BE(s.dateNsec, 20)
    writeU64(e, 24, s.vmClockNsec)
    e.writeUInt32BE(s.vmStateSize > 0xffffffff ? 0 : s.vmStateSize, 32)
    e.writeUInt32BE(extra.length, 36)
    extra.copy(e, FIXED)
    id.copy(e, FIXED + extra.length)
    name.copy(e, FIXED + extra.length + id.length)
    parts.push(e)
  }
  return Buffer.concat(parts)
}
