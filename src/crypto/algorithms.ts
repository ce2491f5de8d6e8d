// Names and properties of the ciphers, modes, IV generators and hashes that
// qemu's encryption layers know (QAPI QCryptoCipherAlgorithm, ...Mode,
// QCryptoIVGenAlgorithm, QCryptoHashAlgorithm), and which of them qimg can
// run: AES through Node's OpenSSL, serpent and twofish in qimg's own code
// (src/crypto/ciphers; Node's OpenSSL 3 has neither). cast5, which qemu 7.2
// (nettle) also knows, is described by info but cannot be unlocked.
import { getCiphers, getHashes } from 'node:crypto'
import { BlockError } from '../cli/errors.js'

export type CipherMode = 'ecb' | 'cbc' | 'xts' | 'ctr'
export type IvGenAlg = 'plain' | 'plain64' | 'essiv'
export type HashAlg = 'md5' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512' | 'ripemd160'

export interface CipherAlg {
  /** qemu's name: aes-256, twofish-128, cast5-128 ... */
  name: string
  /** the LUKS header's cipher-name: aes, twofish, cast5, serpent */
  luksName: string
  /** key length of one cipher instance (XTS uses two) */
  keyBytes: number
  blockSize: number
}

export const CIPHER_ALGS: readonly CipherAlg[] = [
  { name: 'aes-128', luksName: 'aes', keyBytes: 16, blockSize: 16 },
  { name: 'aes-192', luksName: 'aes', keyBytes: 24, blockSize: 16 },
  { name: 'aes-256', luksName: 'aes', keyBytes: 32, blockSize: 16 },
  { name: 'cast5-128', luksName: 'cast5', keyBytes: 16, blockSize: 8 },
  { name: 'serpent-128', luksName: 'serpent', keyBytes: 16, blockSize: 16 },
  { name: 'serpent-192', luksName: 'serpent', keyBytes: 24, blockSize: 16 },
  { name: 'serpent-256', luksName: 'serpent', keyBytes: 32, blockSize: 16 },
  { name: 'twofish-128', luksName: 'twofish', keyBytes: 16, blockSize: 16 },
  { name: 'twofish-192', luksName: 'twofish', keyBytes: 24, blockSize: 16 },
  { name: 'twofish-256', luksName: 'twofish', keyBytes: 32, blockSize: 16 },
]

/** Every value QAPI accepts for cipher-alg (des/3des parse but LUKS refuses them). */
export const QAPI_CIPHER_ALGS = ['aes-128', 'aes-192', 'aes-256', 'des', '3des', 'cast5-128',
  'serpent-128', 'serpent-192', 'serpent-256', 'twofish-128', 'twofish-192', 'twofish-256']
export const CIPHER_MODES: readonly CipherMode[] = ['ecb', 'cbc', 'xts', 'ctr']
export const IVGEN_ALGS: readonly IvGenAlg[] = ['plain', 'plain64', 'essiv']
export const HASH_ALGS: readonly HashAlg[] = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512', 'ripemd160']

const DIGEST_BYTES: Record<HashAlg, number> = {
  md5: 16, sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64, ripemd160: 20,
}

export function digestBytes (h: HashAlg): number { return DIGEST_BYTES[h] }

export function findCipher (name: string): CipherAlg | undefined {
  return CIPHER_ALGS.find(c => c.name === name)
}

/** The cipher of `family` (aes, twofish...) with the given key length, as LUKS headers name them. */
export function cipherByLuksName (luksName: string, keyBytes: number): CipherAlg | undefined {
  return CIPHER_ALGS.find(c => c.luksName === luksName && c.keyBytes === keyBytes)
}

let nodeCiphers: Set<string> | undefined
let nodeHashes: Set<string> | undefined

/** The OpenSSL ECB cipher that runs `alg`, if Node has it. */
export function nodeEcbName (alg: CipherAlg): string | undefined {
  nodeCiphers ??= new Set(getCiphers())
  const name = alg.luksName === 'aes' ? `${alg.name}-ecb` : undefined
  return name !== undefined && nodeCiphers.has(name) ? name : undefined
}

export function hashAvailable (h: HashAlg): boolean {
  nodeHashes ??= new Set(getHashes())
  return nodeHashes.has(h)
}

/** Ciphers qimg implements itself because Node's OpenSSL lacks them. */
const OWN_CIPHERS = new Set(['serpent', 'twofish'])

/** One-line refusal for algorithms qemu knows but neither Node's OpenSSL nor qimg can run. */
export function requireRunnable (alg: CipherAlg, hashes: HashAlg[]): void {
  if (!nodeEcbName(alg) && !OWN_CIPHERS.has(alg.luksName)) throw new BlockError(`Cipher ${alg.name} is not supported by qimg (Node's OpenSSL has no ${alg.luksName})`, 'ENOTSUP')
  for (const h of hashes) {
    if (!hashAvailable(h)) throw new BlockError(`Hash algorithm ${h} is not supported by qimg (Node's OpenSSL lacks it)`, 'ENOTSUP')
  }
}
