// Serpent (Anderson, Biham, Knudsen), bitsliced form: a block is four
// little-endian 32-bit words, 32 rounds of key mixing, one of eight 4-bit
// S-boxes applied across the words, and the linear transformation. Keys
// shorter than 256 bits are padded with a 1 bit then zeros. Node's OpenSSL
// has no Serpent; qemu (nettle) does, so LUKS volumes may use it. Written
// for interoperability more than speed.

const SBOX: number[][] = [
  [3, 8, 15, 1, 10, 6, 5, 11, 14, 13, 4, 2, 7, 0, 9, 12],
  [15, 12, 2, 7, 9, 0, 5, 10, 1, 11, 14, 8, 6, 13, 3, 4],
  [8, 6, 7, 9, 3, 12, 10, 15, 13, 1, 14, 4, 0, 11, 5, 2],
  [0, 15, 11, 8, 12, 9, 6, 3, 13, 1, 2, 4, 10, 7, 5, 14],
  [1, 15, 8, 3, 12, 0, 11, 6, 2, 5, 4, 10, 9, 14, 7, 13],
  [15, 5, 2, 11, 4, 10, 9, 12, 0, 3, 14, 8, 13, 6, 7, 1],
  [7, 2, 12, 5, 8, 4, 6, 11, 14, 9, 1, 15, 13, 3, 10, 0],
  [1, 13, 15, 0, 14, 8, 2, 11, 7, 4, 12, 10, 9, 3, 5, 6],
]
const INV: number[][] = SBOX.map(s => { const r = new Array<number>(16); s.forEach((v, i) => { r[v] = i }); return r })
const PHI = 0x9e3779b9

/**
 * Bitsliced S-boxes through their algebraic normal form: output bit j is the
 * XOR of the monomials (ANDs of input bits) listed for it, computed once
 * from the table with the Moebius transform. All 32 S-box lookups of a
 * round then cost a few dozen word operations.
 */
function anf (s: number[]): number[][] {
  const out: number[][] = []
  for (let j = 0; j < 4; j++) {
    const a = s.map(v => (v >> j) & 1)
    for (let i = 0; i < 4; i++) {
      for (let u = 0; u < 16; u++) if (u & (1 << i)) a[u] ^= a[u ^ (1 << i)]
    }
    out.push(a.flatMap((c, u) => c ? [u] : []))
  }
  return out
}

let tables: { enc: number[][][], dec: number[][][] } | undefined
function getTables () {
  tables ??= { enc: SBOX.map(anf), dec: INV.map(anf) }
  return tables
}

const m = new Int32Array(16)

/** Apply a bitsliced S-box (given as ANF lists) to the 4 words in x (in place). */
function sbox (f: number[][], x: Uint32Array): void {
  m[0] = -1; m[1] = x[0]; m[2] = x[1]; m[4] = x[2]; m[8] = x[3]
  m[3] = m[1] & m[2]; m[5] = m[1] & m[4]; m[6] = m[2] & m[4]; m[7] = m[3] & m[4]
  for (let u = 9; u < 16; u++) m[u] = m[u & 7] & m[8]
  for (let j = 0; j < 4; j++) {
    const list = f[j]
    let y = 0
    for (let k = 0; k < list.length; k++) y ^= m[list[k]]
    x[j] = y >>> 0
  }
}

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
    const { enc } = getTables()
    this.k = new Uint32Array(132)
    const x = new Uint32Array(4)
    for (let i = 0; i < 33; i++) {
      x.set(w.subarray(8 + 4 * i, 12 + 4 * i))
      sbox(enc[(35 - i) % 8], x) // round key i uses S-box (3 - i) mod 8
      this.k.set(x, 4 * i)
    }
  }

  encrypt (buf: Buffer): void {
    const { enc } = getTables()
    const k = this.k
    const x = new Uint32Array(4)
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      for (let i = 0; i < 4; i++) x[i] = buf.readUInt32LE(p + 4 * i)
      for (let r = 0; r < 32; r++) {
        for (let i = 0; i < 4; i++) x[i] ^= k[4 * r + i]
        sbox(enc[r % 8], x)
        if (r < 31) lt(x)
      }
      for (let i = 0; i < 4; i++) buf.writeUInt32LE((x[i] ^ k[128 + i]) >>> 0, p + 4 * i)
    }
  }

  decrypt (buf: Buffer): void {
    const { dec } = getTables()
    const k = this.k
    const x = new Uint32Array(4)
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      for (let i = 0; i < 4; i++) x[i] = (buf.readUInt32LE(p + 4 * i) ^ k[128 + i]) >>> 0
      for (let r = 31; r >= 0; r--) {
        if (r < 31) ltInverse(x)
        sbox(dec[r % 8], x)
        for (let i = 0; i < 4; i++) x[i] ^= k[4 * r + i]
      }
      for (let i = 0; i < 4; i++) buf.writeUInt32LE(x[i], p + 4 * i)
    }
  }
}
