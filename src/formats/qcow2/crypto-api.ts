// What the qcow2 driver needs from an encryption layer (AES or LUKS). The
// implementations live in src/crypto; the driver imports them only for
// encrypted images.
import type { JsonValue } from '../../cli/qjson.js'
import type { SecretStore } from '../../block/secrets.js'

export interface ClusterCrypto {
  /** 'aes' (crypt_method 1) or 'luks' (crypt_method 2) */
  readonly format: 'aes' | 'luks'
  /** ImageInfoSpecificQCow2Encryption for `info` ({ format, ...LUKS details }) */
  info(): { [k: string]: JsonValue | undefined }
  /** true when keys are unlocked and data can be en/decrypted */
  readonly canIO: boolean
  /** the IV is taken from the host offset (LUKS) rather than the guest offset (AES) */
  readonly physicalIV: boolean
  /** en/decryption works on whole sectors of this size (512) */
  readonly sectorSize: number
  /**
   * Decrypt in place. `buf.length` is a multiple of sectorSize; `sectorOffset`
   * is the byte offset the IV derives from (host offset in the data file when
   * physicalIV, else the guest offset), a multiple of sectorSize.
   */
  decrypt(buf: Buffer, sectorOffset: number): void
  /** Encrypt in place; same rules as decrypt. */
  encrypt(buf: Buffer, sectorOffset: number): void
  /**
   * `qemu-img amend` of the encrypt.* options (given without the prefix:
   * state, keyslot, new-secret, old-secret, iter-time). The image must be
   * open read-write with its key. Throws qemu's messages.
   */
  amend?(values: Record<string, string>, secrets: SecretStore, force: boolean): Promise<void>
}
