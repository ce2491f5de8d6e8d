// A dirty bitmap in memory: one bit per `granularity` bytes of a disk of
// `size` bytes, as QEMU's dirty bitmaps keep it. Bit k lives in byte k >> 3,
// least significant bit first (the on-disk order of qcow2 bitmap data).
//
// The bits are held sparsely in chunks of `chunkBytes` bytes (a qcow2 image
// uses its cluster size, so one chunk is one bitmap table entry): a chunk
// that was never dirtied costs nothing, which keeps terabyte disks with fine
// granularity cheap while they are mostly clean.

/** A run of set bits, [first, end). */
export type BitRun = [number, number]

export class DirtyBitmap {
  /** number of bits: ceil(size / granularity) */
  private nbits: number
  private readonly chunks = new Map<number, Buffer>()
  readonly chunkBits: number

  constructor (private diskSize: number, readonly granularity: number, readonly chunkBytes: number) {
    if (!Number.isSafeInteger(granularity) || granularity <= 0) throw new RangeError(`bad granularity ${granularity}`)
    this.chunkBits = chunkBytes * 8
    this.nbits = Math.ceil(diskSize / granularity)
  }

  get size (): number { return this.diskSize }
  get bitCount (): number { return this.nbits }
  /** chunks needed to hold every bit */
  get chunkCount (): number { return Math.ceil(this.nbits / this.chunkBits) }

  /** Mark the guest bytes [offset, offset + length) dirty (clipped to the disk). */
  setRange (offset: number, length: number): void {
    const end = Math.min(offset + length, this.diskSize)
    if (length <= 0 || offset >= end) return
    this.setBits(Math.floor(offset / this.granularity), Math.ceil(end / this.granularity))
  }

  /** Set bits [first, end). */
  setBits (first: number, end: number): void {
    end = Math.min(end, this.nbits)
    let bit = Math.max(first, 0)
    while (bit < end) {
      const c = Math.floor(bit / this.chunkBits)
      const stop = Math.min(end, (c + 1) * this.chunkBits)
      fillBits(this.chunkForWrite(c), bit - c * this.chunkBits, stop - c * this.chunkBits)
      bit = stop
    }
  }

  private chunkForWrite (c: number): Buffer {
    let buf = this.chunks.get(c)
    if (!buf) {
      buf = Buffer.alloc(this.chunkBytes)
      this.chunks.set(c, buf)
    }
    return buf
  }

  get (bit: number): boolean {
    const buf = this.chunks.get(Math.floor(bit / this.chunkBits))
    if (!buf) return false
    const i = bit % this.chunkBits
    return (buf[i >> 3] & (1 << (i & 7))) !== 0
  }

  clear (): void { this.chunks.clear() }

  /**
   * The stored bytes of chunk `c` (null when all zero). The last chunk's
   * bits past the end of the bitmap are always zero.
   */
  chunk (c: number): Buffer | null {
    const buf = this.chunks.get(c)
    if (!buf || isZero(buf)) return null
    return buf
  }

  /** Load chunk `c` from stored bytes (or all ones); bits past the end are dropped. */
  loadChunk (c: number, data: Buffer | 'ones'): void {
    if (c >= this.chunkCount) return
    const buf = Buffer.alloc(this.chunkBytes)
    if (data === 'ones') buf.fill(0xff)
    else data.copy(buf, 0, 0, Math.min(data.length, this.chunkBytes))
    this.chunks.set(c, buf)
    if (c === this.chunkCount - 1) clearFrom(buf, this.nbits - c * this.chunkBits, this.chunkBits)
  }

  /** Runs of set bits in ascending order. */
  * runs (): Generator<BitRun> {
    let open: BitRun | null = null
    for (const c of [...this.chunks.keys()].sort((a, b) => a - b)) {
      const base = c * this.chunkBits
      for (const [a, b] of runsIn(this.chunks.get(c)!)) {
        if (open && open[1] === base + a) { open[1] = base + b; continue }
        if (open) yield open
        open = [base + a, base + b]
      }
    }
    if (open) yield open
  }

  /** Dirty guest byte ranges [start, end), in ascending order, clipped to the disk. */
  * ranges (): Generator<[number, number]> {
    for (const [a, b] of this.runs()) yield [a * this.granularity, Math.min(b * this.granularity, this.diskSize)]
  }

  /** Number of set bits. */
  count (): number {
    let n = 0
    for (const buf of this.chunks.values()) for (const byte of buf) n += POPCOUNT[byte]
    return n
  }

  /** this |= src, bit by bit through the guest ranges (granularities may differ). */
  merge (src: DirtyBitmap): void {
    for (const [a, b] of src.ranges()) this.setRange(a, b - a)
  }

  /** A new disk size: bits past the new end are dropped, new bits are clean. */
  resize (size: number): void {
    this.diskSize = size
    this.nbits = Math.ceil(size / this.granularity)
    const n = this.chunkCount
    for (const c of [...this.chunks.keys()]) if (c >= n) this.chunks.delete(c)
    const last = this.chunks.get(n - 1)
    if (last) clearFrom(last, this.nbits - (n - 1) * this.chunkBits, this.chunkBits)
  }

  copy (): DirtyBitmap {
    const b = new DirtyBitmap(this.diskSize, this.granularity, this.chunkBytes)
    for (const [c, buf] of this.chunks) b.chunks.set(c, Buffer.from(buf))
    return b
  }
}

const POPCOUNT = new Uint8Array(256).map((_, i) => {
  let n = 0
  for (let v = i; v; v >>= 1) n += v & 1
  return n
})

function isZero (buf: Buffer): boolean {
  let i = 0
  for (; i + 8 <= buf.length; i += 8) if (buf.readBigUInt64LE(i) !== 0n) return false
  for (; i < buf.length; i++) if (buf[i] !== 0) return false
  return true
}

/** Set bits [a, b) of buf. */
function fillBits (buf: Buffer, a: number, b: number): void {
  while (a < b && (a & 7) !== 0) { buf[a >> 3] |= 1 << (a & 7); a++ }
  const fullEnd = b & ~7
  if (a < fullEnd) { buf.fill(0xff, a >> 3, fullEnd >> 3); a = fullEnd }
  while (a < b) { buf[a >> 3] |= 1 << (a & 7); a++ }
}

/** Clear bits [a, b) of buf. */
function clearFrom (buf: Buffer, a: number, b: number): void {
  while (a < b && (a & 7) !== 0) { buf[a >> 3] &= ~(1 << (a & 7)); a++ }
  if (a < b) buf.fill(0, a >> 3, Math.ceil(b / 8))
}

/** Runs of set bits within one buffer, skipping zero words quickly. */
function * runsIn (buf: Buffer): Generator<BitRun> {
  const nbits = buf.length * 8
  let bit = 0
  let start = -1
  while (bit < nbits) {
    const byteIndex = bit >> 3
    if ((bit & 63) === 0 && byteIndex + 8 <= buf.length) {
      const w = buf.readBigUInt64LE(byteIndex)
      if (w === 0n) {
        if (start >= 0) { yield [start, bit]; start = -1 }
        bit += 64
        continue
      }
      if (w === 0xffffffffffffffffn) {
        if (start < 0) start = bit
        bit += 64
        continue
      }
    }
    const set = (buf[byteIndex] >> (bit & 7)) & 1
    if (set && start < 0) start = bit
    else if (!set && start >= 0) { yield [start, bit]; start = -1 }
    bit++
  }
  if (start >= 0) yield [start, nbits]
}
