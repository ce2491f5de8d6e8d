// Walking the concatenated sources in the chunks qemu-img convert uses. The
// chunk boundaries matter beyond speed: zero detection runs per chunk, so a
// different cut would leave different holes in the target. Observed rules:
//  - block status is asked per source, at most 2 GiB - 512 bytes at a time,
//    and again only once the previous answer is used up;
//  - data is copied in chunks of at most 2 MiB (one cluster when compressing),
//    zero and unallocated runs in one piece;
//  - with -S 0 everything is data (the target ends fully allocated);
//  - with a backing file for the target only what the source's top layer
//    holds is copied.
import { strerror, errnoOf, QemuError } from '../../cli/errors.js'
import { WIDE_STATUS, type Extent, type Image } from '../../block/types.js'
import type { ByteStore } from '../../io/byte-store.js'
import { SECTOR } from './zero-scan.js'

export type ChunkKind = 'data' | 'zero' | 'backing'

export interface Chunk {
  kind: ChunkKind
  /** first sector in the target (the sources laid end to end) */
  sector: number
  sectors: number
  /** the data is stored plainly in a host file (copy offloading can move it as is) */
  plain: boolean
  /** for plain data within its source's size: where the chunk's first byte is in that file */
  host?: { store: ByteStore, offset: number }
}

export interface PlannerOptions {
  sources: readonly Image[]
  /** -S in bytes; 0 = no sparse detection */
  minSparse: number
  /** cluster size in sectors when compressing, else 0 */
  clusterSectors: number
  targetHasBacking: boolean
  salvage: boolean
  warn: (message: string) => void
  /**
   * ask for wide block status (see StatusOptions): only for walks that just
   * add up data, where answers that run on give the same sums
   */
  wideStatus?: boolean
}

/** 2 MiB: the data chunk size (IO_BUF_SIZE) */
export const BUF_SECTORS = (2 << 20) / SECTOR
/** the largest request the block layer takes (INT_MAX bytes, in whole sectors) */
const MAX_STATUS_SECTORS = Math.floor(0x7fffffff / SECTOR)

export class ChunkPlanner {
  readonly totalSectors: number
  private readonly srcSectors: number[]
  private sector = 0
  private src = 0
  private srcStart = 0
  private statusEnd = 0
  private status: ChunkKind = 'data'
  private statusPlain = false
  /** for plain data: its file, and host offset minus source offset */
  private statusHost: { store: ByteStore, delta: number } | undefined

  constructor (private readonly opts: PlannerOptions) {
    this.srcSectors = opts.sources.map(s => Math.ceil(s.size / SECTOR))
    this.totalSectors = this.srcSectors.reduce((a, b) => a + b, 0)
  }

  /** The next chunk, or null at the end. Calls must not overlap. */
  async next (): Promise<Chunk | null> {
    if (this.sector >= this.totalSectors) return null
    while (this.sector >= this.srcStart + this.srcSectors[this.src]) {
      this.srcStart += this.srcSectors[this.src]
      this.src++
    }
    const srcLeft = this.srcStart + this.srcSectors[this.src] - this.sector
    if (this.statusEnd <= this.sector) await this.queryStatus(Math.min(srcLeft, MAX_STATUS_SECTORS))
    let n = Math.min(srcLeft, this.statusEnd - this.sector)
    let kind = this.status
    if (kind === 'data') n = Math.min(n, this.opts.clusterSectors || BUF_SECTORS)
    const cs = this.opts.clusterSectors
    if (cs) {
      // compressed clusters are written whole: a short run is part of a data cluster
      if (n < cs) {
        n = Math.min(cs, this.totalSectors - this.sector)
        kind = 'data'
      } else {
        n -= n % cs
      }
    }
    const chunk: Chunk = { kind, sector: this.sector, sectors: n, plain: kind === 'data' && this.statusPlain }
    const inSrc = (this.sector - this.srcStart) * SECTOR
    // (a source's size need not be whole sectors: past it the chunk reads as zeros, not as the file)
    if (chunk.plain && this.statusHost && inSrc + n * SECTOR <= this.opts.sources[this.src].size) {
      chunk.host = { store: this.statusHost.store, offset: inSrc + this.statusHost.delta }
    }
    this.sector += n
    return chunk
  }

  private async queryStatus (sectors: number): Promise<void> {
    const image = this.opts.sources[this.src]
    const offset = (this.sector - this.srcStart) * SECTOR
    const length = Math.min(sectors * SECTOR, image.size - offset)
    let ext: Extent
    try {
      ext = await image.blockStatus(offset, length, this.opts.wideStatus ? WIDE_STATUS : undefined)
    } catch (e) {
      const message = `error while reading block status at offset ${this.sector * SECTOR}: ${strerror(errnoOf(e))}`
      if (!this.opts.salvage) throw new QemuError(message)
      // salvaging: take the sector as data; reading it will tell
      this.opts.warn(`warning: ${message}`)
      this.status = 'data'
      this.statusPlain = false
      this.statusHost = undefined
      this.statusEnd = this.sector + 1
      return
    }
    let kind = this.classify(ext)
    const endByte = offset + ext.length
    let end = this.srcStart + (kind === 'data' ? Math.ceil(endByte / SECTOR) : Math.floor(endByte / SECTOR))
    if (end <= this.sector) {
      // a partial sector that is not all of one kind reads as data
      kind = 'data'
      end = this.srcStart + Math.ceil(endByte / SECTOR)
    }
    if (kind === 'zero' && this.opts.minSparse === 0) kind = 'data'
    this.status = kind
    this.statusPlain = ext.kind === 'data' && ext.hostOffset !== undefined && !ext.zero
    this.statusHost = this.statusPlain && ext.store ? { store: ext.store, delta: ext.hostOffset! - offset } : undefined
    this.statusEnd = end
  }

  private classify (ext: Extent): ChunkKind {
    if (this.opts.targetHasBacking && (ext.kind === 'unallocated' || ext.depth > 0)) return 'backing'
    if (ext.kind === 'data' && !ext.zero) return 'data'
    return 'zero'
  }
}

/** Sectors of data the copy will move (the progress total), by walking the chunks once. */
export async function countDataSectors (opts: PlannerOptions): Promise<number> {
  // Without compression the total is the sum of the data answers, wherever
  // they stop (qcow2 answers stop at cluster boundaries, or the image end),
  // so the walk may take wide ones: one per run of compressed clusters or
  // across L2 tables, instead of one each. Errors come where they would.
  // (Compressing, chunks are rounded to whole clusters: that sum depends on
  // where answers stop.)
  const planner = new ChunkPlanner({ ...opts, wideStatus: opts.clusterSectors === 0 })
  let total = 0
  for (let c = await planner.next(); c; c = await planner.next()) {
    if (c.kind === 'data') total += c.sectors
  }
  return total
}
