// The bridge to the encryption layer for qcow2 create and measure. The LUKS
// header is built by src/crypto/qcow2-setup.ts (prepareQcow2Encryption,
// qcow2EncryptionAreaBytes); it is loaded on demand by name so that qcow2
// creation works, and refuses LUKS with a clear message, where that module
// is not part of the build.
import { BlockError } from '../../cli/errors.js'
import type { SecretStore } from '../../block/secrets.js'

export interface Qcow2EncryptionSetupApi {
  prepareQcow2Encryption(options: Record<string, string>, secrets: SecretStore): Promise<{ cryptMethod: number, luksArea?: Buffer } | null>
  qcow2EncryptionAreaBytes(options: Record<string, string>, secrets: SecretStore): number
}

const MODULE = '../../crypto/qcow2-setup.js'

/**
 * The crypto layer's qcow2 setup. Without it, the checks qemu makes first
 * (a key secret named, and known) still give qemu's messages; then LUKS is
 * refused.
 */
export async function luksSetup (o: Record<string, string>, secrets: SecretStore): Promise<Qcow2EncryptionSetupApi> {
  try {
    return await import(MODULE) as Qcow2EncryptionSetupApi
  } catch {
    const id = o['encrypt.key-secret']
    if (id === undefined) throw new BlockError('Parameter \'encrypt.key-secret\' is required for cipher', 'EINVAL')
    secrets.get(id)
    throw new BlockError('LUKS encryption (encrypt.format=luks) is not supported by this qimg build', 'ENOTSUP')
  }
}
