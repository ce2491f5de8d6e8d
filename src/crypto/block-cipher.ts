// A raw block cipher (ECB over whole blocks) on Node's OpenSSL. Every mode
// the sector cipher offers is built on this one primitive, so a whole
// cluster is en/decrypted with a couple of OpenSSL calls instead of one
// cipher object per 512-byte sector (which costs ~5 µs each).
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto'
import { BlockError } from '../cli/errors.js'
import { nodeEcbName, type CipherAlg } from './algorithms.js'

export class BlockCipher {
  readonly blockSize: number
  // ECB keeps no state between whole-block updates, so one object serves every call
  private readonly enc: Cipher
  private readonly dec: Decipher

  constructor (readonly alg: CipherAlg, key: Buffer) {
    const name = nodeEcbName(alg)
    if (!name) throw new BlockError(`Cipher ${alg.name} is not supported by qimg (Node's OpenSSL has no ${alg.luksName})`, 'ENOTSUP')
    if (key.length !== alg.keyBytes) throw new BlockError(`Cipher key length ${key.length} does not match ${alg.name}`, 'EINVAL')
    this.blockSize = alg.blockSize
    this.enc = createCipheriv(name, key, null).setAutoPadding(false)
    this.dec = createDecipheriv(name, key, null).setAutoPadding(false)
  }

  /** Encrypt whole blocks in place. */
  encrypt (buf: Buffer): void {
    if (buf.length === 0) return
    this.enc.update(buf).copy(buf)
  }

  /** Decrypt whole blocks in place. */
  decrypt (buf: Buffer): void {
    if (buf.length === 0) return
    this.dec.update(buf).copy(buf)
  }
}

/** dst ^= src over dst.length bytes. */
export function xorInto (dst: Buffer, src: Buffer): void {
  const n = dst.length
  if ((dst.byteOffset & 3) === 0 && (src.byteOffset & 3) === 0 && (n & 3) === 0) {
    const d = new Uint32Array(dst.buffer, dst.byteOffset, n >>> 2)
    const s = new Uint32Array(src.buffer, src.byteOffset, n >>> 2)
    for (let i = 0; i < d.length; i++) d[i] ^= s[i]
    return
  }
  for (let i = 0; i < n; i++) dst[i] ^= src[i]
}
