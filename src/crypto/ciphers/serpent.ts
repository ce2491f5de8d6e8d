// Serpent (Anderson, Biham, Knudsen), bitsliced form: a block is four
// little-endian 32-bit words, 32 rounds of key mixing, one of eight 4-bit
// S-boxes applied across the words, and the linear transformation. Keys
// shorter than 256 bits are padded with a 1 bit then zeros. Node's OpenSSL
// has no Serpent; qemu (nettle) does, so LUKS volumes may use it. Written
// for interoperability more than speed.
import { INVERSE_SBOXES, SBOXES } from './serpent-sboxes.js'

export { SBOX } from './serpent-tables.js'

const PHI = 0x9e3779b9

const rotl = (x: number, n: number): number => ((x << n) | (x >>> (32 - n))) >>> 0
const rotr = (x: number, n: number): number => ((x >>> n) | (x << (32 - n))) >>> 0

function lt (x: Uint32Array): void {
  let a = x[0]; let b = x[1]; let c = x[2]; let d = x[3]
  a = rotl(a, 13); c = rotl(c, 3)
  b = (b ^ a ^ c) >>> 0; d = (d ^ c ^ (a << 3)) >>> 0
  b = rotl(b, 1); d = rotl(d, 7)
  a = (a ^ b ^ d) >>> 0; c = (c ^ d ^ (b << 7)) >>> 0
  a = rotl(a, 5); c = rotl(c, 22)
  x[0] = a; x[1] = b; x[2] = c; x[3] = d
}

function ltInverse (x: Uint32Array): void {
  let a = x[0]; let b = x[1]; let c = x[2]; let d = x[3]
  c = rotr(c, 22); a = rotr(a, 5)
  c = (c ^ d ^ (b << 7)) >>> 0; a = (a ^ b ^ d) >>> 0
  d = rotr(d, 7); b = rotr(b, 1)
  d = (d ^ c ^ (a << 3)) >>> 0; b = (b ^ a ^ c) >>> 0
  c = rotr(c, 3); a = rotr(a, 13)
  x[0] = a; x[1] = b; x[2] = c; x[3] = d
}

export class Serpent {
  readonly blockSize = 16
  /** 33 round keys of 4 words */
  private readonly k: Uint32Array

  constructor (key: Buffer) {
    if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new Error(`Serpent key of ${key.length} bytes`)
    const padded = Buffer.alloc(32)
    key.copy(padded)
    if (key.length < 32) padded[key.length] = 1
    const w = new Uint32Array(140)
    for (let i = 0; i < 8; i++) w[i] = padded.readUInt32LE(i * 4)
    for (let i = 8; i < 140; i++) w[i] = rotl((w[i - 8] ^ w[i - 5] ^ w[i - 3] ^ w[i - 1] ^ PHI ^ (i - 8)) >>> 0, 11)
    this.k = new Uint32Array(132)
    const x = new Uint32Array(4)
    for (let i = 0; i < 33; i++) {
      x.set(w.subarray(8 + 4 * i, 12 + 4 * i))
      SBOXES[(35 - i) % 8](x) // round key i uses S-box (3 - i) mod 8
      this.k.set(x, 4 * i)
    }
  }

  encrypt (buf: Buffer): void {
    const k = this.k
    const x = new Uint32Array(4)
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      for (let i = 0; i < 4; i++) x[i] = buf.readUInt32LE(p + 4 * i)
      for (let r = 0; r < 32; r++) {
        for (let i = 0; i < 4; i++) x[i] ^= k[4 * r + i]
        SBOXES[r % 8](x)
        if (r < 31) lt(x)
      }
      for (let i = 0; i < 4; i++) buf.writeUInt32LE((x[i] ^ k[128 + i]) >>> 0, p + 4 * i)
    }
  }

  decrypt (buf: Buffer): void {
    const k = this.k
    const x = new Uint32Array(4)
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      for (let i = 0; i < 4; i++) x[i] = (buf.readUInt32LE(p + 4 * i) ^ k[128 + i]) >>> 0
      for (let r = 31; r >= 0; r--) {
        if (r < 31) ltInverse(x)
        INVERSE_SBOXES[r % 8](x)
        for (let i = 0; i < 4; i++) x[i] ^= k[4 * r + i]
      }
      for (let i = 0; i < 4; i++) buf.writeUInt32LE(x[i], p + 4 * i)
    }
  }
}
