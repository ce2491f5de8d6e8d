// The internal snapshot table: one entry per snapshot, each 8-byte aligned.
import { readU64, writeU64 } from './header.js'

export interface Qcow2Snapshot {
  l1TableOffset: number
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

/** Fixed part of an entry before the extra data */
const FIXED = 40

/** Decode `count` entries from `buf` (the table's bytes, read from snapshots_offset). */
export function decodeSnapshots (buf: Buffer, count: number): { snapshots: Qcow2Snapshot[], tableSize: number } {
  const snapshots: Qcow2Snapshot[] = []
  let pos = 0
  for (let i = 0; i < count; i++) {
    if (pos + FIXED > buf.length) throw new SnapshotTableError('Snapshot table is truncated')
    const l1TableOffset = readU64(buf, pos)
    const l1Size = buf.readUInt32BE(pos + 8)
    const idLen = buf.readUInt16BE(pos + 12)
    const nameLen = buf.readUInt16BE(pos + 14)
    const dateSec = buf.readUInt32BE(pos + 16)
    const dateNsec = buf.readUInt32BE(pos + 20)
    const vmClockNsec = readU64(buf, pos + 24)
    let vmStateSize = buf.readUInt32BE(pos + 32)
    const extraLen = buf.readUInt32BE(pos + 36)
    pos += FIXED
    if (pos + extraLen + idLen + nameLen > buf.length) throw new SnapshotTableError('Snapshot table is truncated')
    const extra = buf.subarray(pos, pos + extraLen)
    let diskSize: number | undefined
    let icount: number | undefined
    if (extraLen >= 8) vmStateSize = readU64(extra, 0)
    if (extraLen >= 16) diskSize = readU64(extra, 8)
    if (extraLen >= 24) {
      const v = extra.readBigInt64BE(16)
      icount = v < 0n ? undefined : Number(v)
    }
    const extraUnknown = Buffer.from(extra.subarray(Math.min(extraLen, 24)))
    pos += extraLen
    const id = buf.subarray(pos, pos + idLen).toString('utf8')
    pos += idLen
    const name = buf.subarray(pos, pos + nameLen).toString('utf8')
    pos += nameLen
    pos = (pos + 7) & ~7
    snapshots.push({ l1TableOffset, l1Size, id, name, dateSec, dateNsec, vmClockNsec, vmStateSize, diskSize, icount, extraUnknown })
  }
  return { snapshots, tableSize: pos }
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
