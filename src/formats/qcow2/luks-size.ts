// How much room a LUKS1 header takes (qcow2 allocates it at create time):
// a 4 KiB header sector area, then 8 key slots of key-length x 4000 stripes
// each, every slot aligned to 4 KiB (cryptsetup's LUKS1 layout, as qemu
// writes it).
import { BlockError } from '../../cli/errors.js'

const KEY_BYTES: Record<string, number> = {
  'aes-128': 16, 'aes-192': 24, 'aes-256': 32,
  'cast5-128': 16,
  'serpent-128': 16, 'serpent-192': 24, 'serpent-256': 32,
  'twofish-128': 16, 'twofish-192': 24, 'twofish-256': 32,
  'sm4': 16,
}

const STRIPES = 4000
const ALIGN = 4096

export function luksHeaderBytes (cipherAlg = 'aes-256', cipherMode = 'xts'): number {
  const base = KEY_BYTES[cipherAlg]
  if (base === undefined) throw new BlockError(`Parameter 'cipher-alg' does not accept value '${cipherAlg}'`, 'EINVAL')
  if (!['ecb', 'cbc', 'xts', 'ctr'].includes(cipherMode)) throw new BlockError(`Parameter 'cipher-mode' does not accept value '${cipherMode}'`, 'EINVAL')
  const key = cipherMode === 'xts' ? base * 2 : base
  const slot = Math.ceil(key * STRIPES / ALIGN) * ALIGN
  return ALIGN + 8 * slot
}
