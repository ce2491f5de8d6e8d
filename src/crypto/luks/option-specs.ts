// The -o options of LUKS creation: plain data, so that format drivers can
// list them (`-o help`, qcow2's encrypt.* options) without loading the
// crypto code that creates headers.
import type { CreateOptionSpec } from '../../block/types.js'

/** iter-time, which amend takes too */
export const LUKS_ITER_TIME_OPTION: CreateOptionSpec = { name: 'iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds' }

/**
 * The algorithm options of LUKS creation with qemu-img's help texts, in
 * qemu's definition order (the order of the "Formatting" line; `-o help`
 * sorts them). The luks format lists them after size and key-secret.
 */
export const LUKS_ALGORITHM_OPTIONS: CreateOptionSpec[] = [
  { name: 'cipher-alg', type: 'string', help: 'Name of encryption cipher algorithm' },
  { name: 'cipher-mode', type: 'string', help: 'Name of encryption cipher mode' },
  { name: 'ivgen-alg', type: 'string', help: 'Name of IV generator algorithm' },
  { name: 'ivgen-hash-alg', type: 'string', help: 'Name of IV generator hash algorithm' },
  { name: 'hash-alg', type: 'string', help: 'Name of encryption hash algorithm' },
  LUKS_ITER_TIME_OPTION,
]
