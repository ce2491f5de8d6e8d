// `commit`: copy what the top image (and the layers between it and the base)
// holds into the base, then empty the top unless told to keep it.
//
// qemu-img runs this as an "active commit", a mirror job from the top to the
// base, and the result depends on how that job works, so it is reproduced
// here: the ranges allocated above the base are marked dirty in chunks of
// the job's granularity (the base's cluster size, 4 KiB to 64 KiB), then each
// dirty run is walked with block status through the whole chain: data is
// copied (at most 1 MiB at a time), and whole-cluster runs that read as zeros
// become zero writes that may unmap; anything shorter than one chunk is copied.
import { BlockError, QemuError, strerror } from '../cli/errors.js'
import { findInChain } from './chain.js'
import { StatusRuns } from './status-runs.js'
import type { Image } from '../block/types.js'

const MAX_COPY = 1 << 20
/** the job's buffer: the most chunks one pass over a dirty run takes */
const BUF_SIZE = 16 << 20

export interface CommitRequest {
  /** -b: the base, as named on the command line (implies keeping the top) */
  base?: string
  /** -d: do not empty the top image afterwards */
  drop: boolean
  /** -r: bytes per second, 0 = unlimited */
  rateLimit: number
  /** bytes copied so far and the total to copy */
  onProgress?: (done: number, total: number) => void
}

/** Commit `top` (opened read-write with a writable backing chain) into its base. */
export async function commitImage (top: Image, req: CommitRequest): Promise<void> {
  if (!top.backing) throw new QemuError('Image does not have a backing file')
  const base = req.base === undefined ? top.backing : findInChain(top, req.base)
  if (!base) throw new QemuError(`Did not find '${req.base}' in the backing chain of '${top.filename}'`)
  const drop = req.drop || req.base !== undefined
  try {
    // qemu runs the copy (growing the base first) as a block job
    if (base.size < top.size) {
      if (!base.resize) throw new BlockError('Operation not supported', 'ENOTSUP')
      await base.resize(top.size, {})
    }
    await mirror(top, base, req)
    await base.flush()
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(`Block job failed: ${strerror(e.errno)}`)
    throw e
  }
  if (drop) return
  try {
    if (!top.makeEmpty) throw new BlockError('Operation not supported', 'ENOTSUP')
    await top.makeEmpty()
    await top.flush()
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(e.message)
    throw e
  }
}

/** Is [offset, offset+length) allocated in a layer above `base`? Returns how far the answer holds. */
async function allocatedAbove (runs: StatusRuns, top: Image, base: Image, offset: number, length: number): Promise<{ allocated: boolean, length: number }> {
  let n = length
  for (let img: Image | null = top; img && img !== base; img = img.backing) {
    // a layer shorter than the top reads as zeros past its end, hiding what is below
    if (offset >= img.size) return { allocated: true, length: n }
    n = Math.min(n, img.size - offset)
    const st = await runs.layer(img, offset, n)
    n = Math.min(n, st.length)
    if (st.kind !== 'unallocated') return { allocated: true, length: n }
  }
  return { allocated: false, length: n }
}

/** The dirty runs: allocated ranges above the base, rounded out to `grain`, merged. */
async function dirtyRuns (runs: StatusRuns, top: Image, base: Image, grain: number): Promise<Array<[number, number]>> {
  const dirty: Array<[number, number]> = []
  const size = top.size
  let pos = 0
  while (pos < size) {
    const st = await allocatedAbove(runs, top, base, pos, size - pos)
    if (st.allocated) {
      const start = Math.floor(pos / grain) * grain
      const end = Math.min(Math.ceil((pos + st.length) / grain) * grain, size)
      const last = dirty[dirty.length - 1]
      if (last && last[1] >= start) last[1] = Math.max(last[1], end)
      else dirty.push([start, end])
    }
    pos += st.length
  }
  return dirty
}

async function mirror (top: Image, base: Image, req: CommitRequest): Promise<void> {
  const size = top.size
  const baseCluster = (await base.details()).clusterSize
  const grain = baseCluster ? Math.min(Math.max(baseCluster, 4096), 65536) : 65536
  const aligned = (a: number, b: number): boolean => !baseCluster || (a % baseCluster === 0 && b % baseCluster === 0)
  const status = new StatusRuns()
  const runs = await dirtyRuns(status, top, base, grain)
  const total = runs.reduce((n, [a, b]) => n + b - a, 0)
  let done = 0
  const started = Date.now()
  req.onProgress?.(0, total)
  for (const [start, end] of runs) {
    for (let off = start; off < end; off += BUF_SIZE) {
      const passEnd = Math.min(end, off + BUF_SIZE)
      let pos = off
      while (pos < passEnd) {
        const st = await status.chain(top, pos, passEnd - pos)
        // data that reads as zeros (a hole under a preallocated cluster) is still data to the job
        const data = st.kind === 'data'
        let io = data ? Math.min(st.length, MAX_COPY) : st.length
        io -= io % grain
        let zero = false
        if (io < grain) io = grain
        else if (!data && aligned(pos, pos + io)) zero = true
        io = Math.min(io, passEnd - pos, size - pos)
        if (zero) {
          await base.writeZeroes(pos, io, { unmap: true })
        } else {
          const buf = Buffer.allocUnsafe(io)
          await top.read(buf, pos)
          await base.write(buf, pos)
        }
        pos += io
        done += io
        req.onProgress?.(done, total)
        if (req.rateLimit > 0) await throttle(started, done, req.rateLimit)
      }
    }
  }
}

/** Wait until `done` bytes are no more than `rate` bytes per second since `started`. */
async function throttle (started: number, done: number, rate: number): Promise<void> {
  const due = started + done / rate * 1000
  const wait = due - Date.now()
  if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
}
