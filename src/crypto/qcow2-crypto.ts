// Encryption layers for qcow2 (legacy AES and LUKS). Work in progress: until
// implemented, encrypted images are refused with a clear message.
import { BlockError } from '../cli/errors.js'
import type { ByteStore } from '../io/byte-store.js'
import type { OpenContext } from '../block/types.js'
import type { ClusterCrypto } from '../formats/qcow2/crypto-api.js'
import type { Qcow2Header } from '../formats/qcow2/header.js'

export async function openQcow2Crypto (_h: Qcow2Header, _store: ByteStore, _ctx: OpenContext): Promise<ClusterCrypto> {
  throw new BlockError('encrypted qcow2 images are not supported by qimg yet', 'ENOTSUP')
}
