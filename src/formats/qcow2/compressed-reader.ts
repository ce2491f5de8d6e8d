// Compressed clusters, read and decompressed in batches. A sequential reader
// (convert, a mount's read-ahead) asks for many compressed clusters at once;
// taken one by one, each cost a read and an inflate handed to libuv's pool
// and back, and those hand-offs, not the inflating, were most of the time.
// Requests made in the same turn of the event loop are gathered (TurnBatch):
// clusters that sit close together in the file (qemu writes them back to
// back) are read with one pread and decompressed by one call per half of
// the group.
import type { ByteStore } from '../../io/byte-store.js'
import type { BlockError } from '../../cli/errors.js'
import { TurnBatch } from './turn-batch.js'

/** a gathered group is read in one piece up to this size */
const MAX_GROUP_BYTES = 4 << 20
/** clusters at most this far apart still share a read (the gap is read and ignored) */
const MAX_GAP = 4096

type Decompress = (input: Buffer, spans: Array<[number, number]>) => Promise<Array<Buffer | BlockError>>

interface Wanted {
  offset: number
  size: number
  resolve (cluster: Buffer): void
  reject (err: unknown): void
}

export class CompressedReader {
  private readonly pending = new TurnBatch<Wanted>(batch => this.flush(batch))

  constructor (private readonly store: ByteStore, private readonly decompress: Decompress) {}

  /** The decompressed cluster stored as `size` bytes at `offset` of the file. */
  load (offset: number, size: number): Promise<Buffer> {
    return new Promise((resolve, reject) => this.pending.add({ offset, size, resolve, reject }))
  }

  private flush (wanted: Wanted[]): void {
    wanted.sort((a, b) => a.offset - b.offset)
    let group: Wanted[] = []
    let groupEnd = 0
    for (const w of wanted) {
      const end = w.offset + w.size
      if (group.length > 0 && w.offset <= groupEnd + MAX_GAP && Math.max(end, groupEnd) - group[0].offset <= MAX_GROUP_BYTES) {
        group.push(w)
        groupEnd = Math.max(groupEnd, end)
        continue
      }
      if (group.length > 0) this.readGroup(group, groupEnd)
      group = [w]
      groupEnd = end
    }
    if (group.length > 0) this.readGroup(group, groupEnd)
  }

  private readGroup (group: Wanted[], end: number): void {
    const start = group[0].offset
    const input = Buffer.allocUnsafe(end - start)
    this.store.read(input, start)
      .then(() => this.decompress(input, group.map(w => [w.offset - start, w.size])))
      .then(results => results.forEach((r, i) => r instanceof Error ? group[i].reject(r) : group[i].resolve(r)),
        err => group.forEach(w => w.reject(err)))
  }
}
