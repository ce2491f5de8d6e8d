// A raw block cipher (ECB over whole blocks): Node's OpenSSL for AES,
// qimg's own code for serpent and twofish. Every mode
// the sector cipher offers is built on this one primitive, so a whole
// cluster is en/decrypted with a couple of OpenSSL calls instead of one
// cipher object per 512-byte sector (which costs ~5 µs each).
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto'
import { BlockError } from '../cli/errors.js'
import { nodeEcbName, type CipherAlg } from './algorithms.js'
import { Serpent } from './ciphers/serpent.js'
import { Twofish } from './ciphers/twofish.js'

/** Whole-block ECB encryption and decryption in place. */
interface BlockPrimitive {
  encrypt(buf: Buffer): void
  decrypt(buf: Buffer): void
}

/** OpenSSL's ECB: no state between whole-block updates, so one object serves every call. */
class NodeEcb implements BlockPrimitive {
  private readonly enc: Cipher
  private readonly dec: Decipher

  constructor (name: string, key: Buffer) {
    this.enc = createCipheriv(name, key, null).setAutoPadding(false)
    this.dec = createDecipheriv(name, key, null).setAutoPadding(false)
  }

  encrypt (buf: Buffer): void {
    if (buf.length > 0) this.enc.update(buf).copy(buf)
  }

  decrypt (buf: Buffer): void {
    if (buf.length > 0) this.dec.update(buf).copy(buf)
  }
}

export class BlockCipher {
  readonly blockSize: number
  private readonly impl: BlockPrimitive

  constructor (readonly alg: CipherAlg, key: Buffer) {
    if (key.length !== alg.keyBytes) throw new BlockError(`Cipher key length ${key.length} does not match ${alg.name}`, 'EINVAL')
    this.blockSize = alg.blockSize
    const name = nodeEcbName(alg)
    if (name) this.impl = new NodeEcb(name, key)
    else if (alg.luksName === 'serpent') this.impl = new Serpent(key)
    else if (alg.luksName === 'twofish') this.impl = new Twofish(key)
    else throw new BlockError(`Cipher ${alg.name} is not supported by qimg (Node's OpenSSL has no ${alg.luksName})`, 'ENOTSUP')
  }

  /** Encrypt whole blocks in place. */
  encrypt (buf: Buffer): void { this.impl.encrypt(buf) }

  /** Decrypt whole blocks in place. */
  decrypt (buf: Buffer): void { this.impl.decrypt(buf) }
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
