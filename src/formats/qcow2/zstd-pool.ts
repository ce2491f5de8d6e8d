// zstd compression of clusters on worker threads, so that `convert -c` with
// compression_type=zstd uses both cores (zstd-napi compresses synchronously:
// on the JS thread it was the whole bottleneck). Requests made in the same
// turn of the event loop go out as one message per worker (the batch split
// evenly), since a message costs about as much as compressing a few KiB.
// A short job does not pay for starting threads: the first clusters are
// compressed in place, and the pool starts only once a job has shown it is
// long. If a worker cannot start or fails, compression goes on in place.
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { projectRoot } from '../../project-root.js'
import { TurnBatch } from './turn-batch.js'

export type CompressInPlace = (input: Buffer) => Buffer | null

/** clusters compressed in place before the pool starts */
const CLUSTERS_BEFORE_POOL = 32

interface Wanted { input: Buffer, resolve (out: Buffer | null): void, reject (err: unknown): void }
interface Reply { id: number, output: Uint8Array, lengths: Int32Array }
interface Member { worker: Worker, pending: Map<number, Wanted[]> }

export class ZstdPool {
  private members: Member[] | null = null
  private broken = false
  private seen = 0
  private readonly pending = new TurnBatch<Wanted>(batch => this.flush(batch))
  private nextId = 0

  /** `script`: the worker's module (tests point it elsewhere) */
  constructor (private readonly level: number, private readonly inPlace: CompressInPlace,
    private readonly script = join(projectRoot(), 'dist/src/formats/qcow2/zstd-worker.js')) {}

  /** The zstd frame of one cluster, or null when it would not be smaller. */
  compress (input: Buffer): Promise<Buffer | null> {
    if (this.broken || ++this.seen <= CLUSTERS_BEFORE_POOL) return Promise.resolve(this.inPlace(input))
    return new Promise((resolve, reject) => this.pending.add({ input, resolve, reject }))
  }

  private flush (batch: Wanted[]): void {
    const members = this.start()
    if (!members) {
      for (const w of batch) this.settleInPlace(w)
      return
    }
    const per = Math.ceil(batch.length / members.length)
    for (let i = 0; i < members.length && i * per < batch.length; i++) this.send(members[i], batch.slice(i * per, (i + 1) * per))
  }

  private send (m: Member, part: Wanted[]): void {
    // clusters back to back (images of different cluster sizes may share a batch)
    const sizes = new Int32Array(part.map(w => w.input.length))
    const input = new Uint8Array(sizes.reduce((a, b) => a + b, 0))
    let at = 0
    for (const w of part) { input.set(w.input, at); at += w.input.length }
    const id = this.nextId++
    m.pending.set(id, part)
    m.worker.ref()
    m.worker.postMessage({ id, input, sizes, level: this.level }, [input.buffer, sizes.buffer])
  }

  private onReply (m: Member, r: Reply): void {
    const part = m.pending.get(r.id)
    if (!part) return
    m.pending.delete(r.id)
    if (m.pending.size === 0) m.worker.unref()
    const out = Buffer.from(r.output.buffer, r.output.byteOffset, r.output.length)
    let at = 0
    part.forEach((w, i) => {
      const n = r.lengths[i]
      if (n < 0) return w.resolve(null)
      w.resolve(out.subarray(at, at + n))
      at += n
    })
  }

  /** A worker failed: what it held is compressed in place, and so is everything after. */
  private onFailure (m: Member): void {
    this.broken = true
    for (const part of m.pending.values()) for (const w of part) this.settleInPlace(w)
    m.pending.clear()
    m.worker.unref()
    // the other workers finish what they hold (each unrefs itself when idle)
  }

  private settleInPlace (w: Wanted): void {
    try {
      w.resolve(this.inPlace(w.input))
    } catch (e) {
      w.reject(e)
    }
  }

  private start (): Member[] | null {
    if (this.members || this.broken) return this.members
    const script = this.script
    const count = Math.max(1, Math.min(availableParallelism(), 4))
    try {
      this.members = Array.from({ length: count }, () => {
        const m: Member = { worker: new Worker(script), pending: new Map() }
        m.worker.on('message', (r: Reply) => this.onReply(m, r))
        m.worker.on('error', () => this.onFailure(m))
        m.worker.on('exit', () => { if (m.pending.size > 0) this.onFailure(m) })
        // after the listeners: adding a 'message' listener refs the worker's
        // port again, and an idle worker must not keep the process alive
        m.worker.unref()
        return m
      })
    } catch {
      this.broken = true
      this.members = null
    }
    return this.members
  }
}
