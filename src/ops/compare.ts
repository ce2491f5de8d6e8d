// `compare`: do two images show the same guest content? Allocation comes from
// blockStatus: runs both sides report as reading zeros are not read, runs
// only one side allocates are checked for zeros, the rest is read and
// compared 512 bytes at a time (a mismatch is reported at the start of the
// first differing sector). Strict mode also wants equal sizes and the same
// block status flags (as qemu reports them) everywhere.
import { QemuError, errnoOf, strerror } from '../cli/errors.js'
import type { Extent, Image } from '../block/types.js'

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

async function status (img: Image, name: string, offset: number, length: number): Promise<Status> {
  try {
    const ext = await img.blockStatus(offset, length)
    return { flags: statusFlags(img, ext), length: ext.length }
  } catch {
    throw new QemuError(`Sector allocation test failed for ${name}`, 3)
  }
}

async function readChunk (img: Image, name: string, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length)
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

export async function compareImages (p: CompareParams): Promise<CompareResult> {
  const { image1: img1, image2: img2 } = p
  const size1 = img1.size
  const size2 = img2.size
  const minSize = Math.min(size1, size2)
  const total = Math.max(size1, size2)
  if (size1 !== size2 && p.strict) return { kind: 'size-mismatch' }

  for (let offset = 0; offset < minSize;) {
    const s1 = await status(img1, p.name1, offset, minSize - offset)
    const s2 = await status(img2, p.name2, offset, minSize - offset)
    if (p.strict && s1.flags !== s2.flags) return { kind: 'status-mismatch', offset }
    // runs that need no reading are taken whole; reads go 2 MiB at a time
    let chunk = Math.min(s1.length, s2.length)
    const alloc1 = (s1.flags & ALLOCATED) !== 0
    const alloc2 = (s2.flags & ALLOCATED) !== 0
    if (alloc1 && alloc2) {
      if (!(s1.flags & ZERO && s2.flags & ZERO)) {
        chunk = Math.min(chunk, CHUNK)
        const b1 = await readChunk(img1, p.name1, offset, chunk)
        const b2 = await readChunk(img2, p.name2, offset, chunk)
        const same = equalPrefix(b1, b2)
        if (same < chunk) return { kind: 'content-mismatch', offset: offset + same }
      }
    } else if (alloc1 !== alloc2) {
      // allocated on one side only: it must read as zeros
      const [img, name, st] = alloc1 ? [img1, p.name1, s1] : [img2, p.name2, s2]
      if (!(st.flags & ZERO)) {
        chunk = Math.min(chunk, CHUNK)
        const zeros = zeroPrefix(await readChunk(img, name, offset, chunk))
        if (zeros < chunk) return { kind: 'content-mismatch', offset: offset + zeros }
      }
    }
    offset += chunk
    p.onChunk?.(chunk, total)
  }

  if (size1 !== size2) {
    p.onSizeMismatch?.()
    const [img, name] = size1 > size2 ? [img1, p.name1] : [img2, p.name2]
    for (let offset = minSize; offset < total;) {
      const st = await status(img, name, offset, total - offset)
      let chunk = st.length
      if (st.flags & ALLOCATED && !(st.flags & ZERO)) {
        chunk = Math.min(chunk, CHUNK)
        const zeros = zeroPrefix(await readChunk(img, name, offset, chunk))
        if (zeros < chunk) return { kind: 'content-mismatch', offset: offset + zeros }
      }
      offset += chunk
      p.onChunk?.(chunk, total)
    }
  }
  return { kind: 'identical' }
}
