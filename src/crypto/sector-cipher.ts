// Sector encryption as qemu's block crypto does it: the data is cut into
// sectors (512 bytes for LUKS payloads and qcow2 AES), each encrypted on its
// own with an IV made from its sector number by an IV generator:
//   plain    le32(sector) zero-padded to the cipher's block size
//   plain64  le64(sector) zero-padded
//   essiv    plain64 encrypted (ECB) with hash(key) as key, with the same
//            cipher family at the hash's length (aes-256 for sha256)
// Modes: xts (IEEE 1619: key = data key || tweak key, tweak = IV),
// cbc, ctr (IV as a 128-bit big-endian counter) and ecb (IV unused).
// All are built on ECB calls over many sectors at once.
import { createHash } from 'node:crypto'
import { endianness } from 'node:os'
import { BlockError } from '../cli/errors.js'
import { BlockCipher, xorInto } from './block-cipher.js'
import { cipherByLuksName, digestBytes, type CipherAlg, type CipherMode, type HashAlg, type IvGenAlg } from './algorithms.js'

export const SECTOR_SIZE = 512

export interface SectorCipherSpec {
  alg: CipherAlg
  mode: CipherMode
  ivgen: IvGenAlg
  /** essiv only */
  ivgenHash?: HashAlg
}

/** Bytes of key material the spec needs (two cipher keys for XTS). */
export function keyBytesFor (spec: { alg: CipherAlg, mode: CipherMode }): number {
  return spec.mode === 'xts' ? spec.alg.keyBytes * 2 : spec.alg.keyBytes
}

const FAMILY_TITLE: Record<string, string> = { aes: 'AES', serpent: 'Serpent', twofish: 'Twofish' }

/**
 * The cipher ESSIV uses for a data cipher and hash: same family, key length
 * = digest length. qemu's refusals: cast5 cannot do ESSIV, and the family
 * must have a key of that size.
 */
export function essivCipher (alg: CipherAlg, hash: HashAlg): CipherAlg {
  if (!FAMILY_TITLE[alg.luksName]) throw new BlockError(`Cipher ${alg.name} not supported with essiv`, 'EINVAL')
  const found = cipherByLuksName(alg.luksName, digestBytes(hash))
  if (!found) throw new BlockError(`No ${FAMILY_TITLE[alg.luksName]} cipher with key size ${digestBytes(hash)} available`, 'EINVAL')
  return found
}

/** Check a spec the way qemu does when building its cipher (mode vs block size, essiv). */
export function validateSpec (spec: SectorCipherSpec): void {
  if (spec.mode === 'xts' && spec.alg.blockSize !== 16) throw new BlockError('Unsupported cipher mode xts', 'EINVAL')
  if (spec.ivgen === 'essiv') essivCipher(spec.alg, spec.ivgenHash ?? 'sha256')
}

const LITTLE_ENDIAN = endianness() === 'LE'

/** A Buffer over fresh 4-byte-aligned memory (Uint32Array views need it). */
function alignedBuffer (n: number): Buffer {
  return Buffer.from(new Uint32Array(Math.ceil(n / 4)).buffer, 0, n)
}

export class SectorCipher {
  private readonly data: BlockCipher
  /** XTS tweak cipher */
  private readonly tweak?: BlockCipher
  private readonly essiv?: BlockCipher
  private readonly bs: number

  constructor (readonly spec: SectorCipherSpec, key: Buffer, readonly sectorSize = SECTOR_SIZE) {
    validateSpec(spec)
    if (key.length !== keyBytesFor(spec)) throw new BlockError(`Cipher key length ${key.length} does not match ${spec.alg.name}-${spec.mode}`, 'EINVAL')
    this.bs = spec.alg.blockSize
    if (spec.mode === 'xts') {
      const half = spec.alg.keyBytes
      this.data = new BlockCipher(spec.alg, key.subarray(0, half))
      this.tweak = new BlockCipher(spec.alg, key.subarray(half))
    } else {
      this.data = new BlockCipher(spec.alg, key)
    }
    if (spec.ivgen === 'essiv') {
      const h = spec.ivgenHash ?? 'sha256'
      this.essiv = new BlockCipher(essivCipher(spec.alg, h), createHash(h).update(key).digest())
    }
  }

  /** The IVs of `count` sectors from `first`, one block each. */
  private ivs (first: number, count: number): Buffer {
    const bs = this.bs
    const out = alignedBuffer(count * bs)
    for (let i = 0; i < count; i++) {
      const s = first + i
      const lo = s % 0x100000000
      out.writeUInt32LE(lo, i * bs)
      if (this.spec.ivgen !== 'plain' && bs >= 8) out.writeUInt32LE(Math.floor(s / 0x100000000), i * bs + 4)
    }
    this.essiv?.encrypt(out)
    return out
  }

  private check (buf: Buffer, sector: number): void {
    if (buf.length % this.sectorSize !== 0 || !Number.isSafeInteger(sector) || sector < 0) {
      throw new BlockError(`Encryption request of ${buf.length} bytes at sector ${sector} is not sector aligned`, 'EINVAL')
    }
  }

  /** Decrypt whole sectors in place; `sector` is the number of the first one. */
  decrypt (buf: Buffer, sector: number): void {
    this.check(buf, sector)
    const n = buf.length / this.sectorSize
    if (n === 0) return
    switch (this.spec.mode) {
      case 'ecb': this.data.decrypt(buf); break
      case 'xts': this.xts(buf, sector, n, false); break
      case 'ctr': this.ctr(buf, sector, n); break
      case 'cbc': {
        const ivs = this.ivs(sector, n)
        const prev = alignedBuffer(buf.length)
        // the block before each block: the IV for a sector's first, else the previous ciphertext
        const ss = this.sectorSize
        const bs = this.bs
        for (let i = 0; i < n; i++) {
          ivs.copy(prev, i * ss, i * bs, i * bs + bs)
          buf.copy(prev, i * ss + bs, i * ss, i * ss + ss - bs)
        }
        this.data.decrypt(buf)
        xorInto(buf, prev)
        break
      }
    }
  }

  /** Encrypt whole sectors in place. */
  encrypt (buf: Buffer, sector: number): void {
    this.check(buf, sector)
    const n = buf.length / this.sectorSize
    if (n === 0) return
    switch (this.spec.mode) {
      case 'ecb': this.data.encrypt(buf); break
      case 'xts': this.xts(buf, sector, n, true); break
      case 'ctr': this.ctr(buf, sector, n); break
      case 'cbc': this.cbcEncrypt(buf, sector, n); break
    }
  }

  /**
   * CBC encryption is sequential within a sector but sectors are
   * independent: run the sectors side by side, one ECB call per block
   * position ("lane") across all of them.
   */
  private cbcEncrypt (buf: Buffer, sector: number, n: number): void {
    const bs = this.bs
    const ss = this.sectorSize
    const lane = this.ivs(sector, n) // holds the chaining value of each sector
    for (let b = 0; b < ss / bs; b++) {
      for (let i = 0; i < n; i++) {
        const p = i * ss + b * bs
        for (let k = 0; k < bs; k++) lane[i * bs + k] ^= buf[p + k]
      }
      this.data.encrypt(lane)
      for (let i = 0; i < n; i++) lane.copy(buf, i * ss + b * bs, i * bs, i * bs + bs)
    }
  }

  /** CTR: keystream = E(IV + j) for block j of the sector, the counter big-endian over the block. */
  private ctr (buf: Buffer, sector: number, n: number): void {
    const bs = this.bs
    const ss = this.sectorSize
    const per = ss / bs
    const ivs = this.ivs(sector, n)
    const stream = alignedBuffer(buf.length)
    for (let i = 0; i < n; i++) {
      const base = i * ss
      ivs.copy(stream, base, i * bs, i * bs + bs)
      for (let b = 1; b < per; b++) {
        const p = base + b * bs
        stream.copy(stream, p, p - bs, p)
        for (let k = bs - 1; k >= 0; k--) { // +1, big-endian
          stream[p + k] = (stream[p + k] + 1) & 0xff
          if (stream[p + k] !== 0) break
        }
      }
    }
    this.data.encrypt(stream)
    xorInto(buf, stream)
  }

  /** XTS without ciphertext stealing (sectors are whole blocks). */
  private xts (buf: Buffer, sector: number, n: number, encrypt: boolean): void {
    const ss = this.sectorSize
    const t0 = this.ivs(sector, n)
    this.tweak!.encrypt(t0)
    const tw = alignedBuffer(buf.length)
    const per = ss / 16
    if (LITTLE_ENDIAN) {
      const w = new Uint32Array(tw.buffer, tw.byteOffset, tw.length >>> 2)
      const w0 = new Uint32Array(t0.buffer, t0.byteOffset, t0.length >>> 2)
      for (let i = 0; i < n; i++) {
        let a = w0[i * 4]; let b = w0[i * 4 + 1]; let c = w0[i * 4 + 2]; let d = w0[i * 4 + 3]
        let p = i * per * 4
        for (let j = 0; j < per; j++, p += 4) {
          w[p] = a; w[p + 1] = b; w[p + 2] = c; w[p + 3] = d
          // multiply by x in GF(2^128), little-endian
          const carry = d >>> 31
          d = ((d << 1) | (c >>> 31)) >>> 0
          c = ((c << 1) | (b >>> 31)) >>> 0
          b = ((b << 1) | (a >>> 31)) >>> 0
          a = ((a << 1) ^ (carry * 0x87)) >>> 0
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        let a = t0.readUInt32LE(i * 16); let b = t0.readUInt32LE(i * 16 + 4)
        let c = t0.readUInt32LE(i * 16 + 8); let d = t0.readUInt32LE(i * 16 + 12)
        for (let j = 0; j < per; j++) {
          const p = i * ss + j * 16
          tw.writeUInt32LE(a, p); tw.writeUInt32LE(b, p + 4); tw.writeUInt32LE(c, p + 8); tw.writeUInt32LE(d, p + 12)
          const carry = d >>> 31
          d = ((d << 1) | (c >>> 31)) >>> 0
          c = ((c << 1) | (b >>> 31)) >>> 0
          b = ((b << 1) | (a >>> 31)) >>> 0
          a = ((a << 1) ^ (carry * 0x87)) >>> 0
        }
      }
    }
    xorInto(buf, tw)
    if (encrypt) this.data.encrypt(buf)
    else this.data.decrypt(buf)
    xorInto(buf, tw)
  }
}
