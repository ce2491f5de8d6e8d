// raw: the guest view is the file itself (optionally a window of it, with the
// offset= and size= driver options). Holes in a sparse file read as zeros and
// are reported as zero extents.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import { ImageBase } from '../../block/image.js'
import type { BlockDriver, LayerStatus, OpenContext, Preallocation, WriteZeroesOptions } from '../../block/types.js'
import { SizeError, strtosz } from '../../cli/sizes.js'
import { createRaw, RAW_CREATE_OPTIONS } from './create.js'

const SECTOR = 512

/** offset= and size= take sizes with suffixes, with qemu's messages */
function parseByteOption (name: string, value: string | undefined, ctx: OpenContext): number | undefined {
  if (value === undefined) return undefined
  try {
    const parsed = strtosz(value)
    if (parsed.warning) ctx.warn(`warning: ${parsed.warning}\n`, { prefixed: true })
    return Number(parsed.value)
  } catch (e) {
    if (!(e instanceof SizeError)) throw e
    if (e.kind === 'range') throw new BlockError(`Value '${value}' is out of range for parameter '${name}'`, 'EINVAL')
    throw new BlockError(`Parameter '${name}' expects a non-negative number below 2^64\n` +
      'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.', 'EINVAL')
  }
}

export class RawImage extends ImageBase {
  readonly format = 'raw'

  constructor (filename: string, store: ByteStore, size: number, readOnly: boolean, private readonly base: number, private readonly fixedSize: boolean) {
    super(filename, store, size, readOnly)
  }

  async layerStatus (offset: number, length: number): Promise<LayerStatus> {
    const hostOffset = this.base + offset
    const run = await this.store.dataRun(hostOffset)
    const runLen = Math.max(run.end - hostOffset, 0)
    // past the end of the file (the size is rounded up to a sector): zeros
    if (runLen === 0) return { kind: 'zero', length, hostOffset, store: this.store }
    return { kind: run.data ? 'data' : 'zero', length: Math.min(length, runLen), hostOffset, store: this.store }
  }

  protected async readData (buf: Buffer, offset: number): Promise<void> {
    await this.store.read(buf, this.base + offset)
  }

  /** The file is the guest view: one read, no hole lookup (holes and the tail past EOF read as zeros). */
  override async read (buf: Buffer, offset: number): Promise<void> {
    this.checkRange(offset, buf.length)
    await this.store.read(buf, this.base + offset)
  }

  override async write (buf: Buffer, offset: number): Promise<void> {
    this.checkWritable()
    this.checkRange(offset, buf.length)
    await this.store.write(buf, this.base + offset)
  }

  directRange (offset: number, length: number): { store: ByteStore, offset: number } | undefined {
    if (offset < 0 || length < 0 || offset + length > this.size) return undefined
    return { store: this.store, offset: this.base + offset }
  }

  override async writeZeroes (offset: number, length: number, opts?: WriteZeroesOptions): Promise<void> {
    this.checkWritable()
    this.checkRange(offset, length)
    // past the end of the file (the size is rounded up to a sector) nothing needs doing
    const end = Math.min(this.base + offset + length, await this.store.size())
    const start = this.base + offset
    if (end <= start) return
    // qemu: a hole when unmapping is allowed, else zeros that stay allocated
    if (opts?.unmap) await this.store.punchHole(start, end - start)
    else if (this.store.zeroRange) await this.store.zeroRange(start, end - start)
    else await super.writeZeroes(offset, end - start)
  }

  override async discard (offset: number, length: number): Promise<void> {
    this.checkWritable()
    this.checkRange(offset, length)
    await this.store.punchHole(this.base + offset, length)
  }

  /** Change the guest size: the file follows (after offset=) unless a size= window is fixed. */
  async resize (size: number, opts: { preallocation?: Preallocation } = {}): Promise<void> {
    this.checkWritable()
    if (this.fixedSize) throw new BlockError('Cannot resize fixed-size raw disks', 'ENOTSUP')
    const prealloc = opts.preallocation ?? 'off'
    if (prealloc === 'metadata') throw new BlockError('Unsupported preallocation mode: metadata', 'ENOTSUP')
    const oldEnd = await this.store.size()
    const newEnd = this.base + size
    await this.store.truncate(newEnd)
    if (newEnd > oldEnd && prealloc === 'falloc') await this.store.allocate(oldEnd, newEnd - oldEnd)
    if (newEnd > oldEnd && prealloc === 'full') {
      const zero = Buffer.alloc(Math.min(newEnd - oldEnd, 1 << 20))
      for (let p = oldEnd; p < newEnd; p += zero.length) await this.store.write(zero.subarray(0, Math.min(zero.length, newEnd - p)), p)
    }
    this.size = size
  }
}

export const rawDriver: BlockDriver = {
  name: 'raw',
  runtimeOptions: ['offset', 'size'],
  createOptions: RAW_CREATE_OPTIONS,
  create: createRaw,
  async measure (_options, input) {
    const { measureRaw } = await import('./measure.js')
    return measureRaw(input)
  },
  async open (store: ByteStore, ctx: OpenContext) {
    // the block layer sees the file in whole sectors
    const fileSize = Math.ceil(await store.size() / SECTOR) * SECTOR
    const base = parseByteOption('offset', ctx.options.offset, ctx) ?? 0
    const fixed = parseByteOption('size', ctx.options.size, ctx)
    if (base > fileSize) throw new BlockError(`Offset (${base}) cannot be greater than size of the containing file (${fileSize})`, 'EINVAL')
    let size: number
    if (fixed !== undefined) {
      if (base + fixed > fileSize) {
        throw new BlockError(`The sum of offset (${base}) and size (${fixed}) has to be smaller or equal to the  actual size of the containing file (${fileSize})`, 'EINVAL')
      }
      if (fixed % SECTOR !== 0) throw new BlockError('Specified size is not multiple of 512', 'EINVAL')
      size = fixed
    } else {
      size = fileSize - base
    }
    return new RawImage(ctx.filename, store, size, ctx.readOnly, base, fixed !== undefined)
  },
}
