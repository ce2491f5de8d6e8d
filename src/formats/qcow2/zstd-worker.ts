// A worker thread of the zstd compression pool (zstd-pool.ts): compresses
// batches of clusters with zstd-napi, each into a frame of its own.
// Message in: { id, input (the clusters back to back), sizes (each one's
// bytes), level }. Message out: { id, output, lengths }, where lengths[i] is
// the size of cluster i's frame in `output` (frames back to back), or -1
// when it would not be smaller than the cluster (stored plainly, as qemu does).
import { parentPort } from 'node:worker_threads'
import { zstd } from './zstd-binding.js'

interface Job { id: number, input: Uint8Array, sizes: Int32Array, level: number }

const cctx = new (zstd().CCtx)()

parentPort!.on('message', (job: Job) => {
  const bound = (n: number): number => zstd().compressBound(n)
  const output = new Uint8Array(job.sizes.reduce((sum, n) => sum + bound(n), 0))
  const lengths = new Int32Array(job.sizes.length)
  let from = 0
  let at = 0
  for (const [i, size] of job.sizes.entries()) {
    const n = cctx.compress(output.subarray(at, at + bound(size)), job.input.subarray(from, from + size), job.level)
    from += size
    if (n <= size - 1) {
      lengths[i] = n
      at += n
    } else {
      lengths[i] = -1
    }
  }
  parentPort!.postMessage({ id: job.id, output, lengths }, [output.buffer, lengths.buffer])
})
