// Compression of one qcow2 cluster for writing: raw deflate with a 4 KiB
// window (what qemu uses, so any qcow2 reader can inflate it) or a zstd
// frame. Returns null when the result would not be smaller than the cluster
// minus one byte: qemu then stores the cluster uncompressed.
import { deflateRaw as zlibDeflateRaw } from 'node:zlib'
import { zstd } from './zstd-binding.js'
import { COMPRESSION_ZSTD } from './header.js'
import { ZstdPool } from './zstd-pool.js'

function deflateRaw (input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zlibDeflateRaw(input, { windowBits: 12, memLevel: 9 }, (err, out) => err ? reject(err) : resolve(out))
  })
}

/** qemu's zstd level (zstd's default) */
const ZSTD_LEVEL = 3

function zstdInPlace (input: Buffer): Buffer | null {
  const z = zstd()
  const dst = Buffer.allocUnsafe(z.compressBound(input.length))
  const n = z.compress(dst, input, ZSTD_LEVEL)
  return n <= input.length - 1 ? dst.subarray(0, n) : null
}

let pool: ZstdPool | undefined

export async function compressCluster (compressionType: number, input: Buffer): Promise<Buffer | null> {
  if (compressionType === COMPRESSION_ZSTD) {
    pool ??= new ZstdPool(ZSTD_LEVEL, zstdInPlace)
    return pool.compress(input)
  }
  // node:zlib's async deflate already runs on libuv's pool
  const out = await deflateRaw(input)
  return out.length <= input.length - 1 ? out : null
}
