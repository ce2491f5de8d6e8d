// Decompression of qcow2 compressed clusters: raw deflate (zlib) or zstd.
// A compressed cluster's stored length is rounded up to 512-byte sectors, so
// the stream is followed by padding that must be ignored.
import { createRequire } from 'node:module'
import type * as Zlib from 'node:zlib'
import { zstd } from './zstd-binding.js'
import { BlockError } from '../../cli/errors.js'
import { COMPRESSION_ZSTD } from './header.js'
import { native } from '../../io/native.js'

/**
 * node:zlib, for the paths without the native addon only: loading it (and
 * the streams it builds on) cost every first compressed read ~5 ms.
 */
let zlibModule: typeof Zlib | undefined
const zlib = (): typeof Zlib => (zlibModule ??= createRequire(import.meta.url)('node:zlib') as typeof Zlib)

/** Without the native addon: inflate on the JS thread. */
function inflateRaw (input: Buffer, clusterSize: number): Promise<Buffer> {
  // synchronous: one cluster inflates in well under a millisecond, and the
  // async API costs more than that per call (a stream object each time).
  // An output chunk larger than the cluster makes one buffer, no joining.
  // Z_SYNC_FLUSH: a stream that fills the cluster without an end marker is accepted
  const z = zlib()
  return Promise.resolve(z.inflateRawSync(input, {
    finishFlush: z.constants.Z_SYNC_FLUSH, maxOutputLength: clusterSize, chunkSize: clusterSize + 512,
  }))
}

/** one context for every frame: creating one costs more than decompressing a cluster */
let zstdContext: InstanceType<ReturnType<typeof zstd>['DCtx']> | undefined

/**
 * The cluster in a zstd frame (the padding after it ignored). As in qemu, a
 * frame must hold exactly one cluster: one that ends early, or holds more
 * (qemu finds it not fully flushed), is an I/O error.
 */
function zstdDecompress (input: Buffer, clusterSize: number, out: Buffer): Buffer {
  const z = zstd()
  let frame: Buffer
  try {
    frame = input.subarray(0, z.findFrameCompressedSize(input))
  } catch {
    throw new BlockError('zstd: invalid compressed cluster', 'EIO')
  }
  zstdContext ??= new z.DCtx()
  // (zstd's own errors become EIO in decompressClusters)
  const produced = zstdContext.decompress(out, frame)
  if (produced !== clusterSize) throw new BlockError('zstd: compressed cluster is too short', 'EIO')
  return out
}

/** Decompress one cluster; the result is exactly `clusterSize` bytes or an EIO error. */
export async function decompressCluster (compressionType: number, input: Buffer, clusterSize: number): Promise<Buffer> {
  const [result] = await decompressClusters(compressionType, input, [[0, input.length]], clusterSize)
  if (result instanceof Error) throw result
  return result
}

/** half a batch per pool job: both cores inflate */
const JOBS_PER_BATCH = 2

/**
 * Decompress the clusters whose compressed bytes are input[at, at+length)
 * for each [at, length] of `spans`: each result is exactly `clusterSize`
 * bytes, or the EIO error that cluster alone gets.
 */
export async function decompressClusters (
  compressionType: number, input: Buffer, spans: Array<[number, number]>, clusterSize: number,
  /** where the clusters go (the cluster cache hands out evicted buffers) */
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): Promise<Array<Buffer | BlockError>> {
  const part = (i: number): Buffer => input.subarray(spans[i][0], spans[i][0] + spans[i][1])
  if (compressionType === COMPRESSION_ZSTD) {
    return spans.map((_, i) => {
      try {
        return zstdDecompress(part(i), clusterSize, allocate(clusterSize))
      } catch (e) {
        return e instanceof BlockError ? e : new BlockError('zstd: ' + (e as Error).message, 'EIO')
      }
    })
  }
  const n = native()
  if (n?.inflateRawClusters) {
    // on libuv's pool (src/io/native/inflate.c), like qemu's decompression threads
    const outputs = spans.map(() => allocate(clusterSize))
    const statuses = new Uint8Array(spans.length)
    const per = Math.ceil(spans.length / JOBS_PER_BATCH)
    const jobs: Promise<void>[] = []
    for (let first = 0; first < spans.length; first += per) {
      const last = Math.min(first + per, spans.length)
      const flat = new Uint32Array(spans.slice(first, last).flat())
      jobs.push(new Promise(resolve => n.inflateRawClusters!(input, flat, outputs.slice(first, last), statuses.subarray(first, last), resolve)))
    }
    await Promise.all(jobs)
    return outputs.map((out, i) => statuses[i] === 0 ? out : new BlockError('Could not decompress cluster', 'EIO'))
  }
  const results: Array<Buffer | BlockError> = []
  for (let i = 0; i < spans.length; i++) results.push(await inflateWithoutAddon(part(i), clusterSize))
  return results
}

async function inflateWithoutAddon (input: Buffer, clusterSize: number): Promise<Buffer | BlockError> {
  let out: Buffer
  try {
    out = await inflateRaw(input, clusterSize)
  } catch (e) {
    // the stream may go on past a full cluster; qemu accepts that, we retry with a stream
    if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') return new BlockError('Could not decompress cluster', 'EIO')
    try {
      out = await inflateFirst(input, clusterSize)
    } catch {
      return new BlockError('Could not decompress cluster', 'EIO')
    }
  }
  if (out.length !== clusterSize) return new BlockError('Could not decompress cluster', 'EIO')
  return out
}

function inflateFirst (input: Buffer, clusterSize: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    const z = zlib()
    const inf = z.createInflateRaw({ finishFlush: z.constants.Z_SYNC_FLUSH })
    inf.on('data', (c: Buffer) => {
      chunks.push(c); total += c.length
      if (total >= clusterSize) { inf.destroy(); resolve(Buffer.concat(chunks).subarray(0, clusterSize)) }
    })
    inf.on('error', () => reject(new BlockError('Could not decompress cluster', 'EIO')))
    inf.on('end', () => resolve(Buffer.concat(chunks)))
    inf.end(input)
  })
}
