// The LUKS1 partition header (cryptsetup's "LUKS On-Disk Format
// Specification", version 1.2): 592 big-endian bytes, then the key material
// areas, then the payload. Offsets in the header count 512-byte sectors.
//
//   0 magic "LUKS\xba\xbe"   6 version u16 = 1
//   8 cipher-name[32]       40 cipher-mode[32]      72 hash-spec[32]
// 104 payload-offset u32   108 key-bytes u32
// 112 mk-digest[20]        132 mk-digest-salt[32]  164 mk-digest-iter u32
// 168 uuid[40]             208 key slots 8 x 48:
//     active u32 (0x00AC71F3 / 0x0000DEAD), iterations u32, salt[32],
//     key-material-offset u32, stripes u32
import { BlockError } from '../../cli/errors.js'

export const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe])
export const LUKS_HEADER_SIZE = 592
export const LUKS_SECTOR = 512
export const LUKS_NUM_SLOTS = 8
export const LUKS_DIGEST_LEN = 20
export const LUKS_SALT_LEN = 32
export const LUKS_SLOT_ENABLED = 0x00ac71f3
export const LUKS_SLOT_DISABLED = 0x0000dead
export const LUKS_STRIPES = 4000

export interface LuksKeySlot {
  active: number
  iterations: number
  salt: Buffer
  /** in 512-byte sectors from the start of the header */
  keyOffset: number
  stripes: number
}

export interface LuksHeader {
  version: number
  cipherName: string
  cipherMode: string
  hashSpec: string
  /** in 512-byte sectors */
  payloadOffset: number
  keyBytes: number
  mkDigest: Buffer
  mkDigestSalt: Buffer
  mkDigestIter: number
  uuid: string
  slots: LuksKeySlot[]
}

function cstr (buf: Buffer, start: number, len: number): string {
  const s = buf.subarray(start, start + len)
  const z = s.indexOf(0)
  return s.subarray(0, z < 0 ? len : z).toString('latin1')
}

function putStr (buf: Buffer, start: number, len: number, s: string): void {
  const b = Buffer.from(s, 'latin1')
  if (b.length >= len) throw new BlockError(`LUKS header string '${s}' is too long`, 'EINVAL')
  b.copy(buf, start)
}

/** Decode the 592-byte header; only the magic and version are judged here. */
export function decodeLuksHeader (buf: Buffer): LuksHeader {
  if (buf.length < LUKS_HEADER_SIZE || !buf.subarray(0, 6).equals(LUKS_MAGIC)) {
    throw new BlockError('Volume is not in LUKS format', 'EINVAL')
  }
  const version = buf.readUInt16BE(6)
  if (version !== 1) throw new BlockError(`LUKS version ${version} is not supported`, 'ENOTSUP')
  const slots: LuksKeySlot[] = []
  for (let i = 0; i < LUKS_NUM_SLOTS; i++) {
    const p = 208 + i * 48
    slots.push({
      active: buf.readUInt32BE(p),
      iterations: buf.readUInt32BE(p + 4),
      salt: Buffer.from(buf.subarray(p + 8, p + 40)),
      keyOffset: buf.readUInt32BE(p + 40),
      stripes: buf.readUInt32BE(p + 44),
    })
  }
  return {
    version,
    cipherName: cstr(buf, 8, 32),
    cipherMode: cstr(buf, 40, 32),
    hashSpec: cstr(buf, 72, 32),
    payloadOffset: buf.readUInt32BE(104),
    keyBytes: buf.readUInt32BE(108),
    mkDigest: Buffer.from(buf.subarray(112, 132)),
    mkDigestSalt: Buffer.from(buf.subarray(132, 164)),
    mkDigestIter: buf.readUInt32BE(164),
    uuid: cstr(buf, 168, 40),
    slots,
  }
}

export function encodeLuksHeader (h: LuksHeader): Buffer {
  const buf = Buffer.alloc(LUKS_HEADER_SIZE)
  LUKS_MAGIC.copy(buf, 0)
  buf.writeUInt16BE(h.version, 6)
  putStr(buf, 8, 32, h.cipherName)
  putStr(buf, 40, 32, h.cipherMode)
  putStr(buf, 72, 32, h.hashSpec)
  buf.writeUInt32BE(h.payloadOffset, 104)
  buf.writeUInt32BE(h.keyBytes, 108)
  h.mkDigest.copy(buf, 112, 0, LUKS_DIGEST_LEN)
  h.mkDigestSalt.copy(buf, 132, 0, LUKS_SALT_LEN)
  buf.writeUInt32BE(h.mkDigestIter, 164)
  putStr(buf, 168, 40, h.uuid)
  h.slots.forEach((s, i) => {
    const p = 208 + i * 48
    buf.writeUInt32BE(s.active, p)
    buf.writeUInt32BE(s.iterations, p + 4)
    s.salt.copy(buf, p + 8, 0, LUKS_SALT_LEN)
    buf.writeUInt32BE(s.keyOffset, p + 40)
    buf.writeUInt32BE(s.stripes, p + 44)
  })
  return buf
}

/** Bytes of one key slot's material (stripes x key bytes, whole sectors). */
export function keyMaterialBytes (keyBytes: number, stripes: number): number {
  return Math.ceil(keyBytes * stripes / LUKS_SECTOR) * LUKS_SECTOR
}
