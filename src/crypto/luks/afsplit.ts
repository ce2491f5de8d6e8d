// LUKS anti-forensic information splitter (LUKS1 spec, section 2.4): a key
// of n bytes is stored as `stripes` blocks of n bytes; all but the last are
// random, and the last is key XOR d, where d folds the others through the
// diffusion function H: d = H(d XOR s_i). H hashes the block in digest-sized
// pieces, piece j as hash(be32(j) || piece) (the last piece truncated).
import { createHash, randomBytes } from 'node:crypto'
import { digestBytes, type HashAlg } from '../algorithms.js'

function diffuse (block: Buffer, hash: HashAlg): Buffer {
  const out = Buffer.alloc(block.length)
  const iv = Buffer.alloc(4)
  const size = digestBytes(hash)
  for (let j = 0, pos = 0; pos < block.length; j++, pos += size) {
    iv.writeUInt32BE(j)
    const piece = block.subarray(pos, Math.min(pos + size, block.length))
    createHash(hash).update(iv).update(piece).digest().copy(out, pos, 0, piece.length)
  }
  return out
}

function fold (material: Buffer, keyBytes: number, stripes: number, hash: HashAlg): Buffer {
  let d: Buffer = Buffer.alloc(keyBytes)
  for (let i = 0; i < stripes - 1; i++) {
    const s = material.subarray(i * keyBytes, (i + 1) * keyBytes)
    for (let k = 0; k < keyBytes; k++) d[k] ^= s[k]
    d = diffuse(d, hash)
  }
  return d
}

/** Recover the key from `stripes` x `keyBytes` bytes of split material. */
export function afMerge (material: Buffer, keyBytes: number, stripes: number, hash: HashAlg): Buffer {
  const d = fold(material, keyBytes, stripes, hash)
  const last = material.subarray((stripes - 1) * keyBytes, stripes * keyBytes)
  for (let k = 0; k < keyBytes; k++) d[k] ^= last[k]
  return d
}

/** Split `key` into `stripes` blocks (random except the last). */
export function afSplit (key: Buffer, stripes: number, hash: HashAlg): Buffer {
  const n = key.length
  const out = Buffer.alloc(n * stripes)
  randomBytes(n * (stripes - 1)).copy(out)
  const d = fold(out, n, stripes, hash)
  for (let k = 0; k < n; k++) out[(stripes - 1) * n + k] = d[k] ^ key[k]
  return out
}
