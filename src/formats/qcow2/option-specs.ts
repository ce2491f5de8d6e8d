// qcow2's -o options as create, convert and `-o help` list them: plain data,
// so that opening a qcow2 image (which hands the driver's option list to the
// registry) does not load create's validation code.
import type { CreateOptionSpec } from '../../block/types.js'
import { LUKS_ALGORITHM_OPTIONS } from '../../crypto/luks/option-specs.js'

/** In the order qemu-img prints them on its "Formatting" line (`-o help` sorts them). */
export const QCOW2_CREATE_OPTIONS: CreateOptionSpec[] = [
  { name: 'encryption', type: 'bool', help: 'Encrypt the image with format \'aes\'. (Deprecated in favor of encrypt.format=aes)' },
  { name: 'encrypt.format', type: 'string', help: 'Encrypt the image, format choices: \'aes\', \'luks\'' },
  { name: 'encrypt.key-secret', type: 'string', help: 'ID of secret providing qcow AES key or LUKS passphrase' },
  // the LUKS algorithm options (qcow2's encrypt.format=luks), under encrypt.
  ...LUKS_ALGORITHM_OPTIONS.map(o => ({ ...o, name: `encrypt.${o.name}` })),
  { name: 'cluster_size', type: 'size', help: 'qcow2 cluster size', defaultValue: '65536' },
  { name: 'extended_l2', type: 'bool', help: 'Extended L2 tables', defaultValue: 'off' },
  { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, metadata, falloc, full)' },
  { name: 'compression_type', type: 'string', help: 'Compression method used for image cluster compression', defaultValue: 'zlib' },
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'compat', type: 'string', help: 'Compatibility level (v2 [0.10] or v3 [1.1])' },
  { name: 'backing_file', type: 'string', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
  { name: 'data_file', type: 'string', help: 'File name of an external data file' },
  { name: 'data_file_raw', type: 'bool', help: 'The external data file must stay valid as a raw image' },
  { name: 'lazy_refcounts', type: 'bool', help: 'Postpone refcount updates', defaultValue: 'off' },
  { name: 'refcount_bits', type: 'number', help: 'Width of a reference count entry in bits', defaultValue: '16' },
]
