// A worker thread of the zstd compression pool (zstd-pool.ts): compresses
// batches of clusters with zstd-napi, each into a frame of its own.
// Message in: { id, input (the clusters back to back), size (one cluster's
// bytes), level }. Message out: { id, output, lengths }, where lengths[i] is
// the size of cluster i's frame in `output` (frames back to back), or -1
// when it would not be smaller than the cluster (stored plainly, as qemu does).
import { parentPort } from 'node:worker_threads'
import { zstd } from './zstd-binding.js'

interface Job { id: number, input: Uint8Array, size: number, level: number }

const cctx = new (zstd().CCtx)()

parentPort!.on('message', (job: Job) => {
  const count = job.input.length / job.size
  const bound = zstd().compressBound(job.size)
  const output = new Uint8Array(bound * count)
  const lengths = new Int32Array(count)
  let at = 0
  for (let i = 0; i < count; i++) {
    const n = cctx.compress(output.subarray(at, at + bound), job.input.subarray(i * job.size, (i + 1) * job.size), job.level)
    if (n <= job.size - 1) {
      lengths[i] = n
      at += n
    } else {
      lengths[i] = -1
    }
  }
  parentPort!.postMessage({ id: job.id, output, lengths }, [output.buffer, lengths.buffer])
})
