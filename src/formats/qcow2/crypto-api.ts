// What the qcow2 driver needs from an encryption layer (AES or LUKS). The
// implementations live in src/crypto; the driver imports them only for
// encrypted images.
import type { JsonValue } from '../../cli/qjson.js'

export interface ClusterCrypto {
  /** ImageInfoSpecificQCow2Encryption for `info` ({ format, ...LUKS details }) */
  info(): { [k: string]: JsonValue | undefined }
  /** true when keys are unlocked and data can be en/decrypted */
  readonly canIO: boolean
  /** the IV is taken from the host offset (LUKS) rather than the guest offset (AES) */
  readonly physicalIV: boolean
  /** decrypt in place; `sectorOffset` is the byte offset the IV derives from */
  decrypt(buf: Buffer, sectorOffset: number): void
  encrypt(buf: Buffer, sectorOffset: number): void
}
