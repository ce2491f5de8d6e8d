// Reading metadata tables at offsets taken from the image, as qemu's block
// layer reads them.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'

/** the block layer refuses requests that end past this (INT64_MAX rounded down to 1 GiB) */
export const MAX_REQUEST_END = (1n << 63n) - (1n << 30n)

/**
 * Read `buf.length` bytes at a validated offset: requests ending past
 * MAX_REQUEST_END fail with EIO ("Input/output error"), bytes past the end
 * of the file read as zeros (offsets past 2^53 are always past it).
 */
export async function readTable (store: ByteStore, buf: Buffer, offset: bigint): Promise<void> {
  if (offset + BigInt(buf.length) > MAX_REQUEST_END) throw new BlockError('Input/output error', 'EIO')
  if (offset >= BigInt(await store.size())) { buf.fill(0); return }
  await store.read(buf, Number(offset))
}
