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
import { ChunkLedger, type LedgerEntry } from './convert/ledger.js'
import { allocIoBuffer, native, type NativeCalls } from '../io/native.js'

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
  // qemu walks the allocation once up front to know the progress total.
  // qimg only when something shows for it: drawing progress, or salvaging
  // (the walk warns of block-status errors, as the copy does again).
  // Otherwise the walk only delays the copy (~4 ms for 512 MiB in 64 KiB
  // clusters): a block-status error stops the copy at the same offset with
  // the same message, only after the data before it (qemu writes none).
  const totalData = p.onProgress || p.salvage ? await countDataSectors(plannerOpts) : 0
  const copier = new Copier(p, new ChunkPlanner(plannerOpts), totalData, clusterSectors)
  await copier.run()
  // (the target was opened without flushes for cache mode unsafe: then this only writes its metadata)
  await p.target.flush()
}

function compressedClusterSectors (target: Image): number {
  if (!target.writeCompressed || !target.compressedClusterSize) throw new QemuError('Compression not supported for this file format')
  return target.compressedClusterSize() / SECTOR
}

/** bytes of reads in flight: three full chunks (or as many smaller ones, up to -m) */
const READ_AHEAD_BYTES = 3 * BUF_SECTORS * SECTOR
const MAX_WRITES = 2

/**
 * A worker takes up to this many bytes of consecutive small data chunks at
 * once (a compressed source gives one cluster per chunk, a fragmented or
 * small-cluster one a few): one read, which the source driver serves in
 * batches (decompressing on both cores), instead of a read per chunk.
 * Each chunk is still looked at on its own (zero runs, -S) as qemu does, so
 * the output is the same. When compressing, the clusters go to the
 * compressor together; into a raw target, the data runs that meet across
 * chunk boundaries are written with one call; into qcow2, chunk by chunk
 * (see the write loop).
 */
const GROUP_BYTES = BUF_SECTORS * SECTOR

/** what copyDirect left to do (see there) */
const DIRECT_COPIED = 0
const DIRECT_READ = 1
const DIRECT_UNREAD = 2

/** write errors that say the disk is full, which concurrent writes race for (see ChunkLedger) */
const SPACE_ERRNOS = new Set(['ENOSPC', 'EDQUOT'])

/** a run of an uncompressed chunk to write: its data, or zeros */
interface WriteRun { zero: boolean, at: number, data: Buffer }

interface Ticket {
  /** one chunk, or several consecutive data chunks (see GROUP_BYTES) */
  chunks: Chunk[]
  /** settles when this ticket may write: the previous one's writes are done, started (raw) or allocated (qcow2) */
  previous: Promise<void>
  release: () => void
  entry: LedgerEntry
}

class Copier {
  private chain: Promise<void> = Promise.resolve()
  private planning: Promise<unknown> = Promise.resolve()
  /** a chunk the planner gave that did not fit the last group */
  private stash: Chunk | null = null
  private failure: unknown
  private failureSector = -1
  /** the planner's error, if it gave one: it is not asked again */
  private plannerError: unknown
  /** tickets in flight, for replayInOrder */
  private readonly ledger = new ChunkLedger()
  /** a write failed for want of space (SPACE_ERRNOS) */
  private outOfSpace = false
  /** chunks to hand out again, before the planner's next ones (replayInOrder) */
  private replay: Chunk[] = []
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

  /**
   * Whether tickets group small data chunks (GROUP_BYTES). Not when
   * salvaging (chunk by chunk, for qemu's order of warnings) or drawing
   * progress (its lines follow the chunks as qemu's do).
   */
  private grouping: boolean

  /**
   * The addon's one-job copy (copyDirect), where its out-of-order writes
   * change nothing: into raw, no progress to draw in order, nothing to
   * compress, salvage or pace.
   */
  private directCopy: NativeCalls['copyChunk']

  constructor (private readonly p: ConvertParams, private readonly planner: ChunkPlanner, private readonly totalData: number, private readonly clusterSectors: number) {
    this.grouping = !p.salvage && (clusterSectors > 0 || !p.onProgress)
    this.limiter = p.rateLimit > 0 ? new RateLimiter(p.rateLimit) : null
    this.reads = new Semaphore(p.outOfOrder ? Infinity : READ_AHEAD_BYTES)
    // (-p's lines follow the order chunks finish in: they stay in order for qemu's exact output)
    this.writesCommute = p.target.format === 'raw' && !p.onProgress
    this.writes = new Semaphore(p.outOfOrder || this.writesCommute ? p.workers : MAX_WRITES)
    this.directCopy = this.writesCommute && !clusterSectors && !p.salvage && !this.limiter ? native()?.copyChunk : undefined
  }

  async run (): Promise<void> {
    // salvaging prints a warning per bad sector; one worker keeps them in qemu's order
    const count = this.p.salvage ? 1 : Math.max(1, this.p.workers)
    const workers = Array.from({ length: count }, () => this.worker())
    await Promise.all(workers)
    if (this.failure !== undefined && this.outOfSpace && this.writesCommute && !this.p.outOfOrder) await this.replayInOrder()
    if (this.failure !== undefined) throw this.failure
  }

  /**
   * The raw target's disk filled up while writes ran side by side: give
   * back the space of every chunk not yet behind the point where all writes
   * had finished (punched out: a new target reads zeros there anyway) and
   * write those chunks again, then the rest, one at a time and unscanned
   * by the addon, as qemu does. The copy then stops at the chunk where
   * qemu's stops, with its error. (Into an existing target, -n, the chunks
   * that were in flight read as zeros past that byte, where qemu leaves
   * what was there.)
   */
  private async replayInOrder (): Promise<void> {
    const chunks = this.ledger.takeUnsettled()
    try {
      for (const c of chunks) {
        const at = c.sector * SECTOR
        const len = this.clip(at, c.sectors * SECTOR)
        if (len > 0 && c.kind !== 'backing') await this.p.target.discard(at, len)
      }
    } catch {
      return // the space cannot be given back: the first error stands
    }
    this.replay = chunks
    this.failure = undefined
    this.failureSector = -1
    this.outOfSpace = false
    this.grouping = false
    this.directCopy = undefined
    await this.worker()
  }

  /** Take the next chunk(s); they are handed out (and queued for writing) in order. */
  private nextTicket (): Promise<Ticket | null> {
    const t = this.planning.then(async () => {
      if (this.failure !== undefined) return null
      let first: Chunk | null
      if (this.replay.length > 0) {
        first = this.replay.shift()!
      } else {
        if (this.plannerError !== undefined && !this.stash) throw this.plannerError
        first = this.stash ?? await this.planner.next()
        this.stash = null
      }
      if (!first) return null
      const chunks = [first]
      if (this.grouping && first.kind === 'data') {
        let bytes = first.sectors * SECTOR
        // (a full group asks no further: the next chunk's block status, and
        // its error, belong to the next ticket)
        while (bytes < GROUP_BYTES) {
          const last = chunks[chunks.length - 1]
          const next = await this.planner.next()
          if (!next) break
          if (next.kind !== 'data' || next.sector !== last.sector + last.sectors || bytes + next.sectors * SECTOR > GROUP_BYTES) {
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
      return { chunks, previous, release, entry: this.ledger.add(chunks) }
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
        this.plannerError ??= e
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
        let status = DIRECT_UNREAD
        if (first.kind === 'data') {
          const sectors = chunks.reduce((n, c) => n + c.sectors, 0)
          const bytes = sectors * SECTOR
          if (!buffer || buffer.length < bytes) buffer = allocIoBuffer(Math.max(bytes, BUF_SECTORS * SECTOR))
          if (this.limiter) await this.limiter.take(bytes)
          let pos = 0
          chunks.forEach((c, i) => { data[i] = buffer!.subarray(pos, pos += c.sectors * SECTOR) })
          await this.reads.acquire(bytes)
          try {
            if (chunks.length === 1) status = await this.copyDirect(first, buffer.subarray(0, bytes), ticket)
            // (no progress to count: copyDirect is not used with -p)
            if (status === DIRECT_COPIED) {
              this.ledger.finish(ticket.entry)
              continue
            }
            if (status === DIRECT_UNREAD) await this.read({ ...first, sectors }, buffer.subarray(0, bytes))
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
        // a later ticket failed: stop, unless this one went to the addon and
        // may have written already (then it finishes: its error, at a lower
        // byte, is the one to report)
        if (this.failure !== undefined && status === DIRECT_UNREAD) return
        // where the order of completion cannot change the result, the next
        // ticket may start writing as soon as this one's last write has
        // started; a target that allocates as it writes lets it go once that
        // write's space is taken
        const onAllocated = this.p.outOfOrder || this.p.onProgress ? undefined : ticket.release
        for (let i = 0; i < chunks.length;) {
          current = chunks[i]
          if (i === readFailure?.at) throw readFailure.error
          // compressed clusters side by side are stored with one call, and
          // so are the data runs of uncompressed chunks into a raw target (up
          // to a read failure). (Not into qcow2: where its tables and data
          // clusters go depends on how the writes are cut, and qemu cuts them
          // by chunk.)
          let n = 1
          if (!this.clusterSectors) {
            if (this.p.target.format === 'raw') while (i + n < chunks.length && i + n !== readFailure?.at) n++
          } else if (this.p.target.writePackedClusters) {
            while (i + n < chunks.length && i + n !== readFailure?.at && packed[i] && packed[i + n]) n++
          }
          const last = i + n === chunks.length
          await this.writes.acquire()
          try {
            const hook = last ? onAllocated : undefined
            const written = n === 1
              ? this.write(chunks[i], data[i], packed[i], hook)
              : this.clusterSectors
                ? this.writePacked(chunks[i], packed.slice(i, i + n) as Buffer[], hook)
                : this.writeData(chunks.slice(i, i + n), data.slice(i, i + n) as Buffer[], hook)
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
        this.ledger.finish(ticket.entry)
      } catch (e) {
        this.fail(e, current.sector)
        return
      } finally {
        ticket.release()
      }
    }
  }

  /**
   * Copy a plain data chunk into a raw target in one job of the addon's
   * (read, look for zero sectors, write: see copy.c), when both sides are
   * files the chunk lies in as it is. The target's writes commute, so the
   * next ticket is let go at once, as when a write has started. Says what
   * is left to do: nothing (DIRECT_COPIED), writing what is now in `buf`
   * (DIRECT_READ: a sector is all zeros, for the sparse rules, or the write
   * failed, to be written again for qemu's error), or all of it
   * (DIRECT_UNREAD: not a chunk for the addon, or its read fell short, to be
   * read again for the error or the zeros past the end of the file).
   */
  private async copyDirect (chunk: Chunk, buf: Buffer, ticket: Ticket): Promise<number> {
    const copy = this.directCopy
    const srcFd = chunk.host?.store.fd
    if (!copy || srcFd === undefined) return DIRECT_UNREAD
    const offset = chunk.sector * SECTOR
    const writeLength = this.clip(offset, buf.length)
    const dst = this.p.target.directRange?.(offset, writeLength)
    if (dst?.store.fd === undefined) return DIRECT_UNREAD
    const done = new Promise<number>(resolve => copy(srcFd, chunk.host!.offset, dst.store.fd!, dst.offset, buf, writeLength, this.looksForZeros(chunk), resolve))
    ticket.release()
    const status = await done
    return status === 0 ? DIRECT_COPIED : status === 2 ? DIRECT_UNREAD : DIRECT_READ
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
      await this.writeRuns(this.runsOf(chunk, buf), onAllocated)
    } catch (e) {
      if (e instanceof QemuError) throw e
      const errno = errnoOf(e)
      if (errno && SPACE_ERRNOS.has(errno)) this.outOfSpace = true
      throw new QemuError(`error while writing at byte ${offset}: ${strerror(errno)}`)
    }
  }

  /** Whether zero runs in this data chunk may become holes: not with -S 0, nor for plain data with -C. */
  private looksForZeros (chunk: Chunk): boolean {
    return !(this.p.minSparse === 0 || (this.p.copyOffload && chunk.plain))
  }

  /** What to write for an uncompressed data chunk read into `buf`: data and zero runs, in order. */
  private runsOf (chunk: Chunk, buf: Buffer): WriteRun[] {
    const offset = chunk.sector * SECTOR
    if (!this.looksForZeros(chunk)) return [{ zero: false, at: offset, data: buf }]
    const runs: WriteRun[] = []
    let pos = 0
    for (const run of sparseRuns(zeroSectorMap(buf), chunk.sector, this.p.minSparse / SECTOR)) {
      const len = run.sectors * SECTOR
      runs.push({ zero: run.zero, at: offset + pos, data: buf.subarray(pos, pos + len) })
      pos += len
    }
    return runs
  }

  /** Write runs in order; `onAllocated` goes with the last one that does anything. */
  private async writeRuns (runs: WriteRun[], onAllocated?: () => void): Promise<void> {
    const t = this.p.target
    // the hook only for a final data write: a zero write after it may still allocate tables
    let lastOp = -1
    runs.forEach((r, i) => { if (!r.zero || !this.p.hasZeroInit) lastOp = i })
    for (const [i, run] of runs.entries()) {
      const len = this.clip(run.at, run.data.length)
      if (!run.zero) await t.write(run.data.subarray(0, len), run.at, i === lastOp ? { onAllocated } : undefined)
      else if (!this.p.hasZeroInit) await t.writeZeroes(run.at, len, { unmap: true })
    }
  }

  /**
   * Consecutive uncompressed data chunks, read into one buffer (`data` are
   * side by side in it): each chunk's runs as write() finds them, with data
   * runs that meet across chunk boundaries written by one call. The same
   * bytes reach the same places in the same order. If that fails, the
   * chunks are written again one by one, for the error write() gives (qemu
   * names the chunk it was writing).
   */
  private async writeData (chunks: Chunk[], data: Buffer[], onAllocated?: () => void): Promise<void> {
    const merged: WriteRun[] = []
    for (const [i, chunk] of chunks.entries()) {
      for (const run of this.runsOf(chunk, data[i])) {
        const prev = merged[merged.length - 1]
        if (prev && !prev.zero && !run.zero && prev.at + prev.data.length === run.at) {
          prev.data = Buffer.from(prev.data.buffer, prev.data.byteOffset, prev.data.length + run.data.length)
        } else {
          merged.push({ ...run })
        }
      }
    }
    try {
      await this.writeRuns(merged, onAllocated)
    } catch {
      for (const [i, chunk] of chunks.entries()) await this.write(chunk, data[i], undefined, i === chunks.length - 1 ? onAllocated : undefined)
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
