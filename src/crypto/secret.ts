// Passwords from --object secret: qemu takes them as UTF-8 text (a NUL or
// an invalid sequence is refused, for LUKS and legacy AES alike).
import { isUtf8 } from 'node:buffer'
import { BlockError } from '../cli/errors.js'
import type { SecretStore } from '../block/secrets.js'

/** The secret `id` as a password, with qemu's messages. */
export function passwordSecret (secrets: SecretStore, id: string): Buffer {
  let data: Buffer
  try {
    data = secrets.get(id)
  } catch (e) {
    throw new BlockError((e as Error).message, 'EINVAL')
  }
  if (data.includes(0) || !isUtf8(data)) throw new BlockError(`Data from secret ${id} is not valid UTF-8`, 'EINVAL')
  return data
}
