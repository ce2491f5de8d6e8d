// The options `qemu-img amend` accepts for qcow2, with the types and help
// texts `amend -o help` prints (qemu 7.2; listed sorted by name). The encrypt.*
// entries repeat the crypto layer's QCOW2_ENCRYPT_AMEND_OPTIONS (a test keeps
// them equal) so that loading the qcow2 driver does not load the crypto code.
import type { CreateOptionSpec } from '../../block/types.js'

export const QCOW2_AMEND_OPTIONS: CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'string', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'string', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
  { name: 'data_file', type: 'string', help: 'File name of an external data file' },
  { name: 'data_file_raw', type: 'bool', help: 'The external data file must stay valid as a raw image' },
  { name: 'encrypt.iter-time', type: 'number', help: 'Time to spend in PBKDF in milliseconds' },
  { name: 'encrypt.keyslot', type: 'number', help: 'Select a single keyslot to modify explicitly' },
  { name: 'encrypt.new-secret', type: 'string', help: 'New secret to set in the matching keyslots. Empty string to erase' },
  { name: 'encrypt.old-secret', type: 'string', help: 'Select all keyslots that match this password' },
  { name: 'encrypt.state', type: 'string', help: 'Select new state of affected keyslots (active/inactive)' },
  { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates' },
  { name: 'refcount_bits', type: 'number', help: 'Width of a reference count entry in bits' },
]
