// zstd-napi's native binding, loaded on first use, with the calls qimg makes
// (compress.ts reads frames, compress-write.ts and the zstd worker threads
// write them). One loader, so each thread loads the binding once.
import { createRequire } from 'node:module'

export interface ZstdBinding {
  findFrameCompressedSize(buf: Uint8Array): number
  compressBound(n: number): number
  compress(dst: Uint8Array, src: Uint8Array, level: number): number
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number }
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number }
}

let binding: ZstdBinding | undefined

export function zstd (): ZstdBinding {
  binding ??= createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding
  return binding
}
