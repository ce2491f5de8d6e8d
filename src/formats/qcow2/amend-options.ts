// The options `qemu-img amend` accepts for qcow2 (qemu 7.2; `-o help` lists
// them sorted by name, without defaults): the creation options that can be
// changed, plus the LUKS key slot options. Those repeat the crypto layer's
// QCOW2_ENCRYPT_AMEND_OPTIONS (a test keeps them equal) so that loading the
// qcow2 driver does not load the crypto code.
import type { CreateOptionSpec } from '../../block/types.js'
import { QCOW2_CREATE_OPTIONS } from './option-specs.js'

const AMENDABLE = new Set(['size', 'compat', 'backing_file', 'backing_fmt', 'data_file', 'data_file_raw', 'lazy_refcounts', 'refcount_bits'])

export const QCOW2_AMEND_OPTIONS: CreateOptionSpec[] = [
  ...QCOW2_CREATE_OPTIONS.filter(o => AMENDABLE.has(o.name)).map(({ name, type, help }) => ({ name, type, help })),
  { name: 'encrypt.iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds' },
  { name: 'encrypt.keyslot', type: 'number', help: 'Select a single keyslot to modify explicitly' },
  { name: 'encrypt.new-secret', type: 'string', help: 'New secret to set in the matching keyslots. Empty string to erase' },
  { name: 'encrypt.old-secret', type: 'string', help: 'Select all keyslots that match this password' },
  { name: 'encrypt.state', type: 'string', help: 'Select new state of affected keyslots (active/inactive)' },
]
