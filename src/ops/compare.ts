// `compare`: do two images show the same guest content? Allocation comes from
// blockStatus: runs both sides report as reading zeros are not read, runs
// only one side allocates are checked for zeros, the rest is read and
// compared 512 bytes at a time (a mismatch is reported at the start of the
// first differing sector). Strict mode also wants equal sizes and the same
// block status flags (as qemu reports them) everywhere.
import { QemuError, errnoOf, strerror } from '../cli/errors.js'
import type { Extent, Image } from '../block/types.js'
import { allocIoBuffer } from '../io/native.js'

const SECTOR = 512
/** data is read at most 2 MiB at a time (qemu's IO_BUF_SIZE) */
const CHUNK = 2 << 20

export type CompareResult =
  | { kind: 'identical' }
  | { kind: 'content-mismatch', offset: number }
  | { kind: 'status-mismatch', offset: number }
  | { kind: 'size-mismatch' }

export interface CompareParams {
  image1: Image
  image2: Image
  /** names for messages, as given on the command line */
  name1: string
  name2: string
  strict: boolean
  /** after each chunk: its length and the larger image's size */
  onChunk?: (bytes: number, total: number) => void
  /** the sizes differ (not strict): called once the common part is found equal */
  onSizeMismatch?: () => void
}

/** qemu's block status bits, as strict mode compares them */
const DATA = 0x01
const ZERO = 0x02
const OFFSET_VALID = 0x04
const ALLOCATED = 0x10
const EOF = 0x20

interface Status { flags: number, length: number }

function layerAt (img: Image, depth: number): Image {
  let layer = img
  for (let i = 0; i < depth && layer.backing; i++) layer = layer.backing
  return layer
}

/** An extent in qemu's terms. Past the end of a shorter backing file the zeros count as allocated. */
function statusFlags (img: Image, ext: Extent): number {
  let flags = 0
  if (ext.kind === 'data') flags |= DATA | ALLOCATED
  if (ext.kind === 'zero') flags |= ZERO | ALLOCATED
  if (ext.kind === 'data' && ext.zero) flags |= ZERO
  if (ext.kind === 'unallocated') flags |= ZERO | (layerAt(img, ext.depth).backing ? ALLOCATED : 0)
  if (ext.hostOffset !== undefined) flags |= OFFSET_VALID
  if (ext.offset + ext.length === img.size) flags |= EOF
  return flags
}

/**
 * Block status of one image, asked again only once the previous answer is
 * used up (reads go 2 MiB at a time through long extents; asking each time
 * would cost a hole lookup per chunk on raw files).
 */
class StatusCursor {
  private flags = 0
  private end = 0

  constructor (private readonly img: Image, private readonly name: string, private readonly limit: number) {}

  async at (offset: number): Promise<Status> {
    if (offset >= this.end) {
      try {
        const ext = await this.img.blockStatus(offset, this.limit - offset)
        this.flags = statusFlags(this.img, ext)
        this.end = offset + ext.length
      } catch {
        throw new QemuError(`Sector allocation test failed for ${this.name}`, 3)
      }
    }
    return { flags: this.flags, length: this.end - offset }
  }
}

/** Read into `into` (reused between chunks: fresh memory would be faulted in page by page on every read). */
async function readChunk (img: Image, name: string, offset: number, length: number, into: Buffer): Promise<Buffer> {
  const buf = into.subarray(0, length)
  try {
    await img.read(buf, offset)
  } catch (e) {
    throw new QemuError(`Error while reading offset ${offset} of ${name}: ${strerror(errnoOf(e))}`, 4)
  }
  return buf
}

/** Bytes of the sectors that are equal from the start (a multiple of 512, or the length). */
function equalPrefix (a: Buffer, b: Buffer): number {
  if (a.equals(b)) return a.length
  for (let pos = 0; pos < a.length; pos += SECTOR) {
    const end = Math.min(pos + SECTOR, a.length)
    if (a.compare(b, pos, end, pos, end) !== 0) return pos
  }
  return a.length
}

const ZEROS = Buffer.alloc(CHUNK)

function zeroPrefix (a: Buffer): number {
  return equalPrefix(a, ZEROS.subarray(0, a.length))
}

/** What to do with the next run of the images, in order. */
type Step =
  | { kind: 'skip', offset: number, length: number }
  | { kind: 'both', offset: number, length: number }
  | { kind: 'zeros', offset: number, length: number, img: Image, name: string }
  | { kind: 'status-mismatch', offset: number }
  | { kind: 'size-mismatch-warning' }
  | { kind: 'error', error: unknown }

/** The runs to check, from block status: whole runs where nothing needs reading, 2 MiB pieces where it does. */
async function * plan (p: CompareParams): AsyncGenerator<Step> {
  const { image1: img1, image2: img2 } = p
  const minSize = Math.min(img1.size, img2.size)
  const total = Math.max(img1.size, img2.size)
  try {
    const cursor1 = new StatusCursor(img1, p.name1, minSize)
    const cursor2 = new StatusCursor(img2, p.name2, minSize)
    for (let offset = 0; offset < minSize;) {
      const s1 = await cursor1.at(offset)
      const s2 = await cursor2.at(offset)
      if (p.strict && s1.flags !== s2.flags) { yield { kind: 'status-mismatch', offset }; return }
      const length = Math.min(s1.length, s2.length)
      const alloc1 = (s1.flags & ALLOCATED) !== 0
      const alloc2 = (s2.flags & ALLOCATED) !== 0
      let step: Step = { kind: 'skip', offset, length }
      if (alloc1 && alloc2) {
        if (!(s1.flags & ZERO && s2.flags & ZERO)) step = { kind: 'both', offset, length: Math.min(length, CHUNK) }
      } else if (alloc1 !== alloc2) {
        // allocated on one side only: it must read as zeros
        const [img, name, st] = alloc1 ? [img1, p.name1, s1] : [img2, p.name2, s2]
        if (!(st.flags & ZERO)) step = { kind: 'zeros', offset, length: Math.min(length, CHUNK), img, name }
      }
      yield step
      offset += step.kind === 'skip' ? step.length : (step as { length: number }).length
    }
    if (img1.size === img2.size) return
    yield { kind: 'size-mismatch-warning' }
    const [img, name] = img1.size > img2.size ? [img1, p.name1] : [img2, p.name2]
    const cursor = new StatusCursor(img, name, total)
    for (let offset = minSize; offset < total;) {
      const st = await cursor.at(offset)
      const step: Step = st.flags & ALLOCATED && !(st.flags & ZERO)
        ? { kind: 'zeros', offset, length: Math.min(st.length, CHUNK), img, name }
        : { kind: 'skip', offset, length: st.length }
      yield step
      offset += step.length
    }
  } catch (e) {
    // reported in its turn, after the runs before it were found equal
    yield { kind: 'error', error: e }
  }
}

/** runs read ahead of the one being compared */
const READ_AHEAD = 3

interface InFlight { step: Step, result: Promise<number | undefined> }

export async function compareImages (p: CompareParams): Promise<CompareResult> {
  const total = Math.max(p.image1.size, p.image2.size)
  if (p.image1.size !== p.image2.size && p.strict) return { kind: 'size-mismatch' }
  const buffers = Array.from({ length: READ_AHEAD + 1 }, () => [allocIoBuffer(CHUNK), allocIoBuffer(CHUNK)])
  let started = 0

  /** Start a step's reads; resolves to the offset of the first difference, if any. */
  const start = (step: Step): InFlight => {
    const [b1, b2] = buffers[started++ % buffers.length]
    let result: Promise<number | undefined> = Promise.resolve(undefined)
    if (step.kind === 'both') {
      result = (async () => {
        // both sides at once; the first image's error wins, as qemu reads it first
        const [r1, r2] = await Promise.allSettled([
          readChunk(p.image1, p.name1, step.offset, step.length, b1),
          readChunk(p.image2, p.name2, step.offset, step.length, b2),
        ])
        if (r1.status === 'rejected') throw r1.reason
        if (r2.status === 'rejected') throw r2.reason
        const same = equalPrefix(r1.value, r2.value)
        return same < step.length ? step.offset + same : undefined
      })()
    } else if (step.kind === 'zeros') {
      result = readChunk(step.img, step.name, step.offset, step.length, b1).then(buf => {
        const zeros = zeroPrefix(buf)
        return zeros < step.length ? step.offset + zeros : undefined
      })
    }
    result.catch(() => undefined) // handled in its turn by finish()
    return { step, result }
  }

  /** Settle the oldest step: its verdict, in command-line order of events. */
  const finish = async ({ step, result }: InFlight): Promise<CompareResult | undefined> => {
    switch (step.kind) {
      case 'error': throw step.error
      case 'status-mismatch': return { kind: 'status-mismatch', offset: step.offset }
      case 'size-mismatch-warning': p.onSizeMismatch?.(); return undefined
    }
    const mismatch = await result
    if (mismatch !== undefined) return { kind: 'content-mismatch', offset: mismatch }
    p.onChunk?.(step.length, total)
    return undefined
  }

  const inFlight: InFlight[] = []
  for await (const step of plan(p)) {
    inFlight.push(start(step))
    if (inFlight.length > READ_AHEAD) {
      const verdict = await finish(inFlight.shift()!)
      if (verdict) return verdict
    }
  }
  while (inFlight.length > 0) {
    const verdict = await finish(inFlight.shift()!)
    if (verdict) return verdict
  }
  return { kind: 'identical' }
}
