// `convert`: copy the guest view of one or more source images (laid end to
// end) into a target image. Allocation comes from blockStatus only: zero and
// unallocated runs are never read, data is read in chunks of up to 2 MiB by
// several workers at once, scanned for zeros (-S) and written in order
// (unless out-of-order writes are allowed). The target must already exist
// and be open for writing; creating it is the command's job.
import { QemuError, errnoOf, strerror } from '../cli/errors.js'
import type { Image } from '../block/types.js'
import { ChunkPlanner, countDataSectors, BUF_SECTORS, type Chunk, type PlannerOptions } from './convert/planner.js'
import { SECTOR, isAllZero, sparseRuns, zeroSectorMap } from './convert/zero-scan.js'
import { RateLimiter } from './convert/rate-limit.js'
import { allocIoBuffer } from '../io/native.js'

export interface ConvertParams {
  sources: readonly Image[]
  target: Image
  /** -S in bytes (a multiple of 512); 0 = write everything, fully allocated */
  minSparse: number
  /** the target reads as zeros where nothing is written (a new image, or --target-is-zero) */
  hasZeroInit: boolean
  /** the target has a backing file: copy only what the sources' top layer holds */
  targetHasBacking: boolean
  /** write compressed clusters (-c); the target must have writeCompressed */
  compress: boolean
  /** parallel workers (-m) */
  workers: number
  /** writes may happen out of order (-W) */
  outOfOrder: boolean
  /** turn read errors into zeros with a warning (--salvage) */
  salvage: boolean
  /** -C: data stored plainly in a file is copied as is, without zero detection */
  copyOffload: boolean
  /** bytes per second, 0 = unlimited (-r) */
  rateLimit: number
  /** flush the target at the end (every cache mode but unsafe) */
  flush: boolean
  /** percentage of the data copied so far */
  onProgress?: (percent: number) => void
  /** warnings (qemu's "warning: ..." lines), without the program name */
  warn: (message: string) => void
}

export async function convertImages (p: ConvertParams): Promise<void> {
  const clusterSectors = p.compress ? compressedClusterSectors(p.target) : 0
  const plannerOpts: PlannerOptions = {
    sources: p.sources,
    minSparse: p.minSparse,
    clusterSectors,
    targetHasBacking: p.targetHasBacking,
    salvage: p.salvage,
    warn: p.warn,
  }
  // qemu walks the allocation once up front to know the progress total
  const totalData = await countDataSectors(plannerOpts)
  const copier = new Copier(p, new ChunkPlanner(plannerOpts), totalData, clusterSectors)
  await copier.run()
  if (p.flush) await p.target.flush()
}

function compressedClusterSectors (target: Image): number {
  if (!target.writeCompressed || !target.compressedClusterSize) throw new QemuError('Compression not supported for this file format')
  return target.compressedClusterSize() / SECTOR
}

/** bytes of reads in flight: three full chunks (or as many smaller ones, up to -m) */
const READ_AHEAD_BYTES = 3 * BUF_SECTORS * SECTOR
const MAX_WRITES = 2

/**
 * When compressing, a worker takes up to this many bytes of consecutive data
 * chunks (one cluster each) at once: one read, and the clusters go to the
 * compressor together, so its threads get batches instead of a cluster per
 * hand-off. Each cluster is still looked at and written on its own, in
 * order, as qemu does, so the output is the same.
 */
const COMPRESS_GROUP_BYTES = BUF_SECTORS * SECTOR

interface Ticket {
  /** one chunk, or several consecutive data chunks (see COMPRESS_GROUP_BYTES) */
  chunks: Chunk[]
  /** settles when this ticket may write: the previous one's writes are done, started (raw) or allocated (qcow2) */
  previous: Promise<void>
  release: () => void
}

class Copier {
  private chain: Promise<void> = Promise.resolve()
  private planning: Promise<unknown> = Promise.resolve()
  /** a chunk the planner gave that did not fit the last group */
  private stash: Chunk | null = null
  private failure: unknown
  private failureSector = -1
  /**
   * A raw target is written at fixed positions: the order writes finish in
   * changes nothing, so in-order copies only need them to start in order.
   * (A qcow2 target allocates clusters as writes arrive: the next write may
   * start only once this one has allocated, see WriteHooks, for qemu's layout.)
   */
  private readonly writesCommute: boolean
  private doneSectors = 0
  private readonly limiter: RateLimiter | null
  /**
   * Bytes of reads in flight. Writes go in order; libuv's pool has 4
   * threads, and a write queued behind a crowd of reads stalls the writer,
   * which is what bounds the copy. So reads stay a few full chunks ahead, no
   * more; small chunks (a compressed source's, one cluster each) may be
   * more at once, which lets the qcow2 driver read and decompress them in batches.
   */
  private readonly reads: Semaphore
  /**
   * Writes in flight into a qcow2 target, when one may start once the
   * previous has allocated: more than two only block pool threads on the
   * file's lock (measured), holding up the reads. Raw targets, whose writes
   * commute, are not limited.
   */
  private readonly writes: Semaphore

  constructor (private readonly p: ConvertParams, private readonly planner: ChunkPlanner, private readonly totalData: number, private readonly clusterSectors: number) {
    this.limiter = p.rateLimit > 0 ? new RateLimiter(p.rateLimit) : null
    this.reads = new Semaphore(p.outOfOrder ? Infinity : READ_AHEAD_BYTES)
    // (-p's lines follow the order chunks finish in: they stay in order for qemu's exact output)
    this.writesCommute = p.target.format === 'raw' && !p.onProgress
    this.writes = new Semaphore(p.outOfOrder || this.writesCommute ? p.workers : MAX_WRITES)
  }

  async run (): Promise<void> {
    // salvaging prints a warning per bad sector; one worker keeps them in qemu's order
    const count = this.p.salvage ? 1 : Math.max(1, this.p.workers)
    const workers = Array.from({ length: count }, () => this.worker())
    await Promise.all(workers)
    if (this.failure !== undefined) throw this.failure
  }

  /** Take the next chunk(s); they are handed out (and queued for writing) in order. */
  private nextTicket (): Promise<Ticket | null> {
    const t = this.planning.then(async () => {
      if (this.failure !== undefined) return null
      const first = this.stash ?? await this.planner.next()
      this.stash = null
      if (!first) return null
      const chunks = [first]
      if (this.clusterSectors && !this.p.salvage && first.kind === 'data') {
        let bytes = first.sectors * SECTOR
        for (;;) {
          const last = chunks[chunks.length - 1]
          const next = await this.planner.next()
          if (!next) break
          if (next.kind !== 'data' || next.sector !== last.sector + last.sectors || bytes + next.sectors * SECTOR > COMPRESS_GROUP_BYTES) {
            this.stash = next
            break
          }
          chunks.push(next)
          bytes += next.sectors * SECTOR
        }
      }
      const previous = this.chain
      let release!: () => void
      this.chain = new Promise<void>(resolve => { release = resolve })
      return { chunks, previous, release }
    })
    this.planning = t.catch(() => undefined)
    return t
  }

  private async worker (): Promise<void> {
    // each worker reuses one buffer: its chunks are written before it takes more
    let buffer: Buffer | null = null
    for (;;) {
      let ticket: Ticket | null
      try {
        ticket = await this.nextTicket()
      } catch (e) {
        this.fail(e)
        return
      }
      if (!ticket) return
      const { chunks } = ticket
      const first = chunks[0]
      let current = first
      try {
        const data: Array<Buffer | null> = chunks.map(() => null)
        let readFailure: { at: number, error: unknown } | undefined
        let packed: Array<Buffer | null | undefined> = chunks.map(() => undefined)
        if (first.kind === 'data') {
          const sectors = chunks.reduce((n, c) => n + c.sectors, 0)
          const bytes = sectors * SECTOR
          if (!buffer || buffer.length < bytes) buffer = allocIoBuffer(Math.max(bytes, BUF_SECTORS * SECTOR))
          if (this.limiter) await this.limiter.take(bytes)
          let pos = 0
          chunks.forEach((c, i) => { data[i] = buffer!.subarray(pos, pos += c.sectors * SECTOR) })
          await this.reads.acquire(bytes)
          try {
            await this.read({ ...first, sectors }, buffer.subarray(0, bytes))
          } catch (e) {
            if (chunks.length === 1) throw e
            // as if read one by one: the chunks before the first that fails are written, then it fails
            for (const [i, c] of chunks.entries()) {
              try {
                await this.read(c, data[i]!)
              } catch (e2) {
                readFailure = { at: i, error: e2 }
                break
              }
            }
          } finally {
            this.reads.release(bytes)
          }
          // compressing is the slow part of -c: done here, by every worker at
          // once, and the clusters of a group asked for together
          const target = this.p.target
          if (this.clusterSectors && target.compressForWrite) {
            packed = await Promise.all(data.map((d, i) => i >= (readFailure?.at ?? Infinity) || isAllZero(d!) ? undefined : target.compressForWrite!(d!)))
          }
        }
        if (!this.p.outOfOrder) await ticket.previous
        if (this.failure !== undefined) return
        // where the order of completion cannot change the result, the next
        // ticket may start writing as soon as this one's last write has
        // started; a target that allocates as it writes lets it go once that
        // write's space is taken
        const onAllocated = this.p.outOfOrder || this.p.onProgress ? undefined : ticket.release
        for (let i = 0; i < chunks.length;) {
          current = chunks[i]
          if (i === readFailure?.at) throw readFailure.error
          // compressed clusters side by side are stored with one call
          let n = 1
          if (this.p.target.writePackedClusters) {
            while (i + n < chunks.length && i + n !== readFailure?.at && packed[i] && packed[i + n]) n++
          }
          const last = i + n === chunks.length
          await this.writes.acquire()
          try {
            const hook = last ? onAllocated : undefined
            const written = n > 1
              ? this.writePacked(chunks[i], packed.slice(i, i + n) as Buffer[], hook)
              : this.write(chunks[i], data[i], packed[i], hook)
            if (last && this.writesCommute) ticket.release()
            await written
          } finally {
            this.writes.release()
          }
          for (const chunk of chunks.slice(i, i + n)) {
            if (chunk.kind !== 'data') continue
            this.doneSectors += chunk.sectors
            this.p.onProgress?.(100 * this.doneSectors / this.totalData)
          }
          i += n
        }
      } catch (e) {
        this.fail(e, current.sector)
        return
      } finally {
        ticket.release()
      }
    }
  }

  /** Keep the error to report: the first one, or with overlapping writes the one at the lowest offset (as in order). */
  private fail (e: unknown, sector = -1): void {
    if (this.failure === undefined || (sector >= 0 && this.failureSector >= 0 && sector < this.failureSector)) {
      this.failure = e
      this.failureSector = sector
    }
  }

  /** Read [sector, sector+sectors) of the sources laid end to end. */
  private async read (chunk: Chunk, buf: Buffer): Promise<void> {
    try {
      await this.readSpan(buf, chunk.sector)
    } catch (e) {
      if (e instanceof QemuError) throw e
      if (!this.p.salvage) throw new QemuError(`error while reading at byte ${chunk.sector * SECTOR}: ${strerror(errnoOf(e))}`)
      // salvaging: sector by sector, zeros where reading fails
      for (let i = 0; i < chunk.sectors; i++) {
        const part = buf.subarray(i * SECTOR, (i + 1) * SECTOR)
        try {
          await this.readSpan(part, chunk.sector + i)
        } catch (e2) {
          this.p.warn(`warning: error while reading offset ${(chunk.sector + i) * SECTOR}: ${strerror(errnoOf(e2))}`)
          part.fill(0)
        }
      }
    }
  }

  private async readSpan (buf: Buffer, sector: number): Promise<void> {
    let pos = sector * SECTOR
    let done = 0
    let base = 0
    for (const src of this.p.sources) {
      const srcBytes = Math.ceil(src.size / SECTOR) * SECTOR
      if (done >= buf.length) break
      if (pos < base + srcBytes) {
        const inSrc = pos - base
        const len = Math.min(buf.length - done, srcBytes - inSrc)
        const readable = Math.max(0, Math.min(len, src.size - inSrc))
        if (readable > 0) await src.read(buf.subarray(done, done + readable), inSrc)
        if (readable < len) buf.fill(0, done + readable, done + len)
        done += len
        pos += len
      }
      base += srcBytes
    }
    if (done < buf.length) buf.fill(0, done)
  }

  /** `onAllocated`: passed to the chunk's last write (see WriteHooks); earlier ones finish first */
  private async write (chunk: Chunk, data: Buffer | null, packed?: Buffer | null, onAllocated?: () => void): Promise<void> {
    const t = this.p.target
    const offset = chunk.sector * SECTOR
    try {
      if (chunk.kind === 'backing') return
      if (chunk.kind === 'zero') {
        if (!this.p.hasZeroInit) await t.writeZeroes(offset, this.clip(offset, chunk.sectors * SECTOR), { unmap: true })
        return
      }
      const buf = data!
      if (this.clusterSectors) {
        if (isAllZero(buf)) {
          if (!this.p.hasZeroInit) await t.writeZeroes(offset, this.clip(offset, buf.length), { unmap: true })
        } else {
          await t.writeCompressed!(buf, offset, packed, { onAllocated })
        }
        return
      }
      if (this.p.minSparse === 0 || (this.p.copyOffload && chunk.plain)) {
        await t.write(buf.subarray(0, this.clip(offset, buf.length)), offset, { onAllocated })
        return
      }
      const runs = sparseRuns(zeroSectorMap(buf), chunk.sector, this.p.minSparse / SECTOR)
      // the hook only for a final data write: a zero write after it may still allocate tables
      let lastOp = -1
      runs.forEach((r, i) => { if (!r.zero || !this.p.hasZeroInit) lastOp = i })
      let pos = 0
      for (const [i, run] of runs.entries()) {
        const len = run.sectors * SECTOR
        const at = offset + pos
        if (!run.zero) await t.write(buf.subarray(pos, pos + this.clip(at, len)), at, i === lastOp ? { onAllocated } : undefined)
        else if (!this.p.hasZeroInit) await t.writeZeroes(at, this.clip(at, len), { unmap: true })
        pos += len
      }
    } catch (e) {
      if (e instanceof QemuError) throw e
      throw new QemuError(`error while writing at byte ${offset}: ${strerror(errnoOf(e))}`)
    }
  }

  /** Consecutive compressed clusters, from `first` on (see Image.writePackedClusters). */
  private async writePacked (first: Chunk, packed: Buffer[], onAllocated?: () => void): Promise<void> {
    const offset = first.sector * SECTOR
    try {
      await this.p.target.writePackedClusters!(offset, packed, { onAllocated })
    } catch (e) {
      if (e instanceof QemuError) throw e
      throw new QemuError(`error while writing at byte ${offset}: ${strerror(errnoOf(e))}`)
    }
  }

  /** Writes stop at the target's end (its size may be a byte count that is not whole sectors). */
  private clip (offset: number, length: number): number {
    return Math.max(0, Math.min(length, this.p.target.size - offset))
  }
}

/** At most `free` units held at a time (a holder larger than that may hold it all); first come, first served. */
class Semaphore {
  private waiting: Array<{ units: number, resolve: () => void }> = []
  private held = 0
  constructor (private free: number) {}

  async acquire (units = 1): Promise<void> {
    if (this.waiting.length === 0 && (units <= this.free || this.held === 0)) {
      this.take(units)
      return
    }
    await new Promise<void>(resolve => this.waiting.push({ units, resolve }))
  }

  release (units = 1): void {
    this.free += units
    this.held--
    while (this.waiting.length > 0 && (this.waiting[0].units <= this.free || this.held === 0)) {
      const next = this.waiting.shift()!
      this.take(next.units)
      next.resolve()
    }
  }

  private take (units: number): void {
    this.free -= units
    this.held++
  }
}
