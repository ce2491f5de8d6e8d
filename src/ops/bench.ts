// `bench`: issue `count` read or write requests of `bufferSize` bytes, at
// most `depth` at a time, starting at `offset` and stepping by `step`
// (wrapping around the end of the image), optionally flushing every
// `flushInterval` requests. Returns the elapsed time.
import type { Image } from '../block/types.js'
import { BlockError, strerror } from '../cli/errors.js'

export interface BenchOptions {
  count: number
  depth: number
  bufferSize: number
  offset: number
  step: number
  write: boolean
  pattern: number
  flushInterval: number
  drain: boolean
}

export interface BenchResult { seconds: number }

export async function bench (img: Image, o: BenchOptions): Promise<BenchResult> {
  const start = process.hrtime.bigint()
  const buf = Buffer.alloc(o.bufferSize, o.write ? o.pattern : 0)
  let issued = 0
  let completed = 0
  let offset = o.offset
  let failure: unknown
  const inflight = new Set<Promise<void>>()

  const one = async (at: number): Promise<void> => {
    // each read gets its own buffer: concurrent reads must not share one
    if (o.write) await img.write(buf, at)
    else await img.read(Buffer.allocUnsafe(o.bufferSize), at)
  }

  while (completed < o.count && failure === undefined) {
    while (issued < o.count && inflight.size < o.depth && failure === undefined) {
      const at = offset
      offset += o.step
      if (offset >= img.size && img.size > 0) offset %= img.size
      issued++
      const p: Promise<void> = one(at).then(async () => {
        completed++
        if (o.flushInterval > 0 && completed % o.flushInterval === 0) {
          // with draining, the flush waits for the requests already in flight
          if (o.drain) await Promise.all([...inflight].filter(q => q !== p))
          await img.flush()
        }
      }, (e: unknown) => { failure ??= e })
        .finally(() => inflight.delete(p))
      inflight.add(p)
    }
    if (inflight.size > 0) await Promise.race(inflight)
    else break
  }
  await Promise.all(inflight)
  if (failure !== undefined) {
    const errno = failure instanceof BlockError ? failure.errno : (failure as { code?: string }).code
    throw new BlockError(`Failed request: ${strerror(errno)}`, errno ?? 'EIO')
  }
  if (o.write) await img.flush()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  return { seconds }
}
