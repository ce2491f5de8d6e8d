// qcow2's legacy encryption (crypt_method 1, `encryption=on` /
// `encrypt.format=aes`): AES-128-CBC per 512-byte sector, IV = plain64 of the
// guest sector number, key = the secret's first 16 bytes, zero-padded when
// shorter (qemu does no key derivation; a wrong password just decrypts to
// garbage). Observed with qemu-img/qemu-io 7.2.
import { findCipher } from './algorithms.js'
import { SectorCipher } from './sector-cipher.js'

export const AES_KEY_BYTES = 16

/** The AES key qemu derives from a password. */
export function legacyAesKey (password: Buffer): Buffer {
  const key = Buffer.alloc(AES_KEY_BYTES)
  password.copy(key, 0, 0, Math.min(password.length, AES_KEY_BYTES))
  return key
}

/** The sector cipher of a legacy-AES qcow2 image (guest sector numbers). */
export function legacyAesCipher (password: Buffer): SectorCipher {
  return new SectorCipher({ alg: findCipher('aes-128')!, mode: 'cbc', ivgen: 'plain64' }, legacyAesKey(password))
}
