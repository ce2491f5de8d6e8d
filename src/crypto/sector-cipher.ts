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

function bswap32 (x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0
}

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
   * position ("lane") across all of them. XOR and copies go word-wise
   * (endian-neutral) over an aligned view of the data.
   */
  private cbcEncrypt (buf: Buffer, sector: number, n: number): void {
    const aligned = (buf.byteOffset & 3) === 0 ? buf : alignedBuffer(buf.length)
    if (aligned !== buf) buf.copy(aligned)
    const bw = this.bs >>> 2
    const sw = this.sectorSize >>> 2
    const data = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 2)
    const laneBuf = this.ivs(sector, n) // holds the chaining value of each sector
    const lane = new Uint32Array(laneBuf.buffer, laneBuf.byteOffset, laneBuf.length >>> 2)
    for (let b = 0; b < sw; b += bw) {
      for (let i = 0, l = 0; i < n; i++, l += bw) {
        const p = i * sw + b
        for (let k = 0; k < bw; k++) lane[l + k] ^= data[p + k]
      }
      this.data.encrypt(laneBuf)
      for (let i = 0, l = 0; i < n; i++, l += bw) {
        const p = i * sw + b
        for (let k = 0; k < bw; k++) data[p + k] = lane[l + k]
      }
    }
    if (aligned !== buf) aligned.copy(buf)
  }

  /** CTR: keystream = E(IV + j) for block j of the sector, the counter big-endian over the block. */
  private ctr (buf: Buffer, sector: number, n: number): void {
    const bs = this.bs
    const per = this.sectorSize / bs
    const words = bs >>> 2
    const ivs = this.ivs(sector, n)
    const stream = alignedBuffer(buf.length)
    const out = new Uint32Array(stream.buffer, stream.byteOffset, stream.length >>> 2)
    // counter words, most significant first, as numbers; stored in memory order
    const w = new Array<number>(words)
    const store = LITTLE_ENDIAN ? bswap32 : (x: number) => x
    let o = 0
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < words; k++) w[k] = ivs.readUInt32BE(i * bs + k * 4)
      for (let b = 0; b < per; b++) {
        for (let k = 0; k < words; k++) out[o++] = store(w[k])
        for (let k = words - 1; k >= 0; k--) { // +1, carrying leftwards
          w[k] = (w[k] + 1) >>> 0
          if (w[k] !== 0) break
        }
      }
    }
    this.data.encrypt(stream)
    xorInto(buf, stream)
  }

  /** XTS without ciphertext stealing (sectors are whole blocks). */
  private xts (buf: Buffer, sector: number, n: number, encrypt: boolean): void {
    const t0 = this.ivs(sector, n)
    this.tweak!.encrypt(t0)
    const per = this.sectorSize / 16
    if (!LITTLE_ENDIAN) {
      const tw = tweakBuffer(t0, n, per)
      xorInto(buf, tw)
      if (encrypt) this.data.encrypt(buf)
      else this.data.decrypt(buf)
      xorInto(buf, tw)
      return
    }
    // little-endian host: the tweak words are the Uint32Array words; XOR them
    // in while generating them (no tweak buffer), before and after the cipher
    const aligned = (buf.byteOffset & 3) === 0 ? buf : alignedBuffer(buf.length)
    if (aligned !== buf) buf.copy(aligned)
    const data = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length >>> 2)
    const first = new Uint32Array(t0.buffer, t0.byteOffset, t0.length >>> 2)
    xorTweaks(data, first, n, per)
    if (encrypt) this.data.encrypt(aligned)
    else this.data.decrypt(aligned)
    xorTweaks(data, first, n, per)
    if (aligned !== buf) aligned.copy(buf)
  }
}

/** data ^= the XTS tweaks of n sectors of `per` blocks, from each sector's first tweak (LE words). */
function xorTweaks (data: Uint32Array, first: Uint32Array, n: number, per: number): void {
  let p = 0
  for (let i = 0; i < n; i++) {
    let a = first[i * 4]; let b = first[i * 4 + 1]; let c = first[i * 4 + 2]; let d = first[i * 4 + 3]
    for (let j = 0; j < per; j++, p += 4) {
      data[p] ^= a; data[p + 1] ^= b; data[p + 2] ^= c; data[p + 3] ^= d
      // multiply by x in GF(2^128), little-endian
      const carry = d >>> 31
      d = ((d << 1) | (c >>> 31)) >>> 0
      c = ((c << 1) | (b >>> 31)) >>> 0
      b = ((b << 1) | (a >>> 31)) >>> 0
      a = ((a << 1) ^ (carry * 0x87)) >>> 0
    }
  }
}

/** The XTS tweaks of n sectors as bytes (any host byte order). */
function tweakBuffer (t0: Buffer, n: number, per: number): Buffer {
  const tw = Buffer.alloc(n * per * 16)
  for (let i = 0; i < n; i++) {
    let a = t0.readUInt32LE(i * 16); let b = t0.readUInt32LE(i * 16 + 4)
    let c = t0.readUInt32LE(i * 16 + 8); let d = t0.readUInt32LE(i * 16 + 12)
    for (let j = 0; j < per; j++) {
      const p = (i * per + j) * 16
      tw.writeUInt32LE(a, p); tw.writeUInt32LE(b, p + 4); tw.writeUInt32LE(c, p + 8); tw.writeUInt32LE(d, p + 12)
      const carry = d >>> 31
      d = ((d << 1) | (c >>> 31)) >>> 0
      c = ((c << 1) | (b >>> 31)) >>> 0
      b = ((b << 1) | (a >>> 31)) >>> 0
      a = ((a << 1) ^ (carry * 0x87)) >>> 0
    }
  }
  return tw
}
