// `dd`: copy [start, end) of the input's guest view to the start of the
// output. qemu-img dd works in bs-sized blocks; the bytes are the same when
// we move several blocks per request, so we do (1 MiB at a time).
import type { Image } from '../block/types.js'
import { allocIoBuffer } from '../io/native.js'

const CHUNK = 1 << 20

export async function ddCopy (input: Image, output: Image, start: number, end: number, blockSize: number): Promise<void> {
  const per = Math.max(blockSize, Math.floor(CHUNK / blockSize) * blockSize)
  const buf = allocIoBuffer(per)
  for (let pos = start; pos < end; pos += per) {
    const len = Math.min(per, end - pos)
    const part = buf.subarray(0, len)
    await input.read(part, pos)
    // the output may be a little smaller (its size is what create made of it)
    const room = Math.min(len, output.size - (pos - start))
    if (room > 0) await output.write(part.subarray(0, room), pos - start)
  }
  await output.flush()
}

/**
 * The range qemu-img dd copies. Note qemu-img's rule: `count` blocks are
 * counted from the start of the input, not from the skip offset.
 */
export function ddRange (inputSize: number, blockSize: number, count: number | undefined, skip: number): { start: number, end: number, skipTooFar: boolean } {
  let end = inputSize
  if (count !== undefined && count * blockSize < end) end = count * blockSize
  const start = skip * blockSize
  return { start, end, skipTooFar: start > end }
}
