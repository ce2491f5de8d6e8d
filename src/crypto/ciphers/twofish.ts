// Twofish (Schneier et al.): 16-round Feistel network on four little-endian
// 32-bit words, with key-dependent S-boxes built from the q0/q1 byte
// permutations and the MDS matrix, and 40 subkeys from the h function.
// Node's OpenSSL has no Twofish; qemu (nettle) does, so LUKS volumes may use
// it. The g function is precomputed per key as four byte-indexed tables.

const Q_T: number[][][] = [
  [ // q0: t0..t3
    [8, 1, 7, 13, 6, 15, 3, 2, 0, 11, 5, 9, 14, 12, 10, 4],
    [14, 12, 11, 8, 1, 2, 3, 5, 15, 4, 10, 6, 7, 0, 9, 13],
    [11, 10, 5, 14, 6, 13, 9, 0, 12, 8, 15, 3, 2, 4, 7, 1],
    [13, 7, 15, 4, 1, 2, 6, 14, 9, 11, 3, 0, 8, 5, 12, 10],
  ],
  [ // q1
    [2, 8, 11, 13, 15, 7, 6, 14, 3, 1, 9, 4, 0, 10, 12, 5],
    [1, 14, 2, 11, 4, 12, 3, 7, 6, 13, 10, 5, 15, 9, 0, 8],
    [4, 12, 7, 5, 1, 6, 9, 10, 0, 14, 13, 8, 2, 11, 3, 15],
    [11, 9, 5, 1, 12, 3, 13, 14, 6, 4, 7, 15, 2, 0, 8, 10],
  ],
]

const ror4 = (x: number, n: number): number => ((x >> n) | (x << (4 - n))) & 15

function makeQ (t: number[][]): Uint8Array {
  const q = new Uint8Array(256)
  for (let x = 0; x < 256; x++) {
    let a = x >> 4; let b = x & 15
    let a1 = a ^ b; let b1 = a ^ ror4(b, 1) ^ ((8 * a) & 15)
    a = t[0][a1]; b = t[1][b1]
    a1 = a ^ b; b1 = a ^ ror4(b, 1) ^ ((8 * a) & 15)
    q[x] = (t[3][b1] << 4) | t[2][a1]
  }
  return q
}

/** multiply in GF(2^8) modulo `poly` */
function gfMul (a: number, b: number, poly: number): number {
  let r = 0
  while (b) {
    if (b & 1) r ^= a
    a <<= 1
    if (a & 0x100) a ^= poly
    b >>= 1
  }
  return r
}

const MDS = [
  [0x01, 0xef, 0x5b, 0x5b],
  [0x5b, 0xef, 0xef, 0x01],
  [0xef, 0x5b, 0x01, 0xef],
  [0xef, 0x01, 0xef, 0x5b],
]
const RS = [
  [0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e],
  [0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5],
  [0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19],
  [0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03],
]
const MDS_POLY = 0x169
const RS_POLY = 0x14d

let qs: [Uint8Array, Uint8Array] | undefined
function q (): [Uint8Array, Uint8Array] {
  qs ??= [makeQ(Q_T[0]), makeQ(Q_T[1])]
  return qs
}

/** The MDS column j times byte v, as a little-endian word. */
function mdsColumn (j: number, v: number): number {
  return (gfMul(MDS[0][j], v, MDS_POLY) | (gfMul(MDS[1][j], v, MDS_POLY) << 8) |
    (gfMul(MDS[2][j], v, MDS_POLY) << 16) | (gfMul(MDS[3][j], v, MDS_POLY) << 24)) >>> 0
}

/** Byte j of h's S-box chain for input byte x and key words L (before the MDS). */
function hByte (j: number, x: number, L: number[]): number {
  const [q0, q1] = q()
  const k = L.length
  const lb = (i: number): number => (L[i] >>> (8 * j)) & 0xff
  let y = x
  if (k === 4) y = [q1, q0, q0, q1][j][y] ^ lb(3)
  if (k >= 3) y = [q1, q1, q0, q0][j][y] ^ lb(2)
  const first = [q0, q1, q0, q1][j]
  const second = [q0, q0, q1, q1][j]
  const last = [q1, q0, q1, q0][j]
  return last[second[first[y] ^ lb(1)] ^ lb(0)]
}

function h (x: number, L: number[]): number {
  let r = 0
  for (let j = 0; j < 4; j++) r ^= mdsColumn(j, hByte(j, (x >>> (8 * j)) & 0xff, L))
  return r >>> 0
}

const rotl = (x: number, n: number): number => ((x << n) | (x >>> (32 - n))) >>> 0
const rotr = (x: number, n: number): number => ((x >>> n) | (x << (32 - n))) >>> 0

export class Twofish {
  readonly blockSize = 16
  private readonly K = new Uint32Array(40)
  /** g(X) = s0[X & 255] ^ s1[(X >> 8) & 255] ^ s2[(X >> 16) & 255] ^ s3[X >>> 24] */
  private readonly s: Uint32Array[]

  constructor (key: Buffer) {
    if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new Error(`Twofish key of ${key.length} bytes`)
    const k = key.length / 8
    const M = Array.from({ length: 2 * k }, (_, i) => key.readUInt32LE(4 * i))
    const Me = M.filter((_, i) => i % 2 === 0)
    const Mo = M.filter((_, i) => i % 2 === 1)
    // S_i = RS . key bytes 8i..8i+7; g uses them in reverse order
    const S: number[] = []
    for (let i = 0; i < k; i++) {
      let w = 0
      for (let r = 0; r < 4; r++) {
        let v = 0
        for (let c = 0; c < 8; c++) v ^= gfMul(RS[r][c], key[8 * i + c], RS_POLY)
        w |= v << (8 * r)
      }
      S.unshift(w >>> 0)
    }
    const rho = 0x01010101
    for (let i = 0; i < 20; i++) {
      const a = h(Math.imul(2 * i, rho) >>> 0, Me)
      const b = rotl(h(Math.imul(2 * i + 1, rho) >>> 0, Mo), 8)
      this.K[2 * i] = (a + b) >>> 0
      this.K[2 * i + 1] = rotl((a + 2 * b) >>> 0, 9)
    }
    this.s = [0, 1, 2, 3].map(j => {
      const t = new Uint32Array(256)
      for (let v = 0; v < 256; v++) t[v] = mdsColumn(j, hByte(j, v, S))
      return t
    })
  }

  private g (x: number): number {
    const s = this.s
    return (s[0][x & 255] ^ s[1][(x >>> 8) & 255] ^ s[2][(x >>> 16) & 255] ^ s[3][x >>> 24]) >>> 0
  }

  encrypt (buf: Buffer): void {
    const K = this.K
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      let r0 = (buf.readUInt32LE(p) ^ K[0]) >>> 0
      let r1 = (buf.readUInt32LE(p + 4) ^ K[1]) >>> 0
      let r2 = (buf.readUInt32LE(p + 8) ^ K[2]) >>> 0
      let r3 = (buf.readUInt32LE(p + 12) ^ K[3]) >>> 0
      for (let r = 0; r < 16; r++) {
        const t0 = this.g(r0)
        const t1 = this.g(rotl(r1, 8))
        r2 = rotr((r2 ^ ((t0 + t1 + K[2 * r + 8]) >>> 0)) >>> 0, 1)
        r3 = (rotl(r3, 1) ^ ((t0 + 2 * t1 + K[2 * r + 9]) >>> 0)) >>> 0
        const a = r0; const b = r1
        r0 = r2; r1 = r3; r2 = a; r3 = b
      }
      buf.writeUInt32LE((r2 ^ K[4]) >>> 0, p)
      buf.writeUInt32LE((r3 ^ K[5]) >>> 0, p + 4)
      buf.writeUInt32LE((r0 ^ K[6]) >>> 0, p + 8)
      buf.writeUInt32LE((r1 ^ K[7]) >>> 0, p + 12)
    }
  }

  decrypt (buf: Buffer): void {
    const K = this.K
    for (let p = 0; p + 16 <= buf.length; p += 16) {
      // undo the output whitening and the final (undone) swap
      let r2 = (buf.readUInt32LE(p) ^ K[4]) >>> 0
      let r3 = (buf.readUInt32LE(p + 4) ^ K[5]) >>> 0
      let r0 = (buf.readUInt32LE(p + 8) ^ K[6]) >>> 0
      let r1 = (buf.readUInt32LE(p + 12) ^ K[7]) >>> 0
      for (let r = 15; r >= 0; r--) {
        // before round r's swap: (r0, r1) were r2/r3 now
        const a = r2; const b = r3
        r2 = r0; r3 = r1; r0 = a; r1 = b
        const t0 = this.g(r0)
        const t1 = this.g(rotl(r1, 8))
        r2 = (rotl(r2, 1) ^ ((t0 + t1 + K[2 * r + 8]) >>> 0)) >>> 0
        r3 = rotr((r3 ^ ((t0 + 2 * t1 + K[2 * r + 9]) >>> 0)) >>> 0, 1)
      }
      buf.writeUInt32LE((r0 ^ K[0]) >>> 0, p)
      buf.writeUInt32LE((r1 ^ K[1]) >>> 0, p + 4)
      buf.writeUInt32LE((r2 ^ K[2]) >>> 0, p + 8)
      buf.writeUInt32LE((r3 ^ K[3]) >>> 0, p + 12)
    }
  }
}
