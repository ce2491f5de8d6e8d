// The chunks handed out to convert's workers and not yet known to be behind
// the point where every write has finished. When a raw target's disk fills
// up, concurrent writes raced for the last space: which one failed, and so
// the byte qemu-img's message names, depends on timing. qemu writes one
// chunk after the other. The copier then undoes what is still in this
// ledger and writes it again one chunk at a time (see Copier.replayInOrder),
// which fails where qemu fails and leaves what qemu leaves.
import type { Chunk } from './planner.js'

export interface LedgerEntry {
  chunks: Chunk[]
  done: boolean
}

export class ChunkLedger {
  // in the order handed out; the done ones at the front are dropped, so
  // this holds about as many entries as there are tickets in flight
  private entries: LedgerEntry[] = []

  /** A ticket's chunks, handed out after every earlier entry's. */
  add (chunks: Chunk[]): LedgerEntry {
    const e = { chunks, done: false }
    this.entries.push(e)
    return e
  }

  /** This entry's writes have all finished. */
  finish (e: LedgerEntry): void {
    e.done = true
    let n = 0
    while (n < this.entries.length && this.entries[n].done) n++
    if (n > 0) this.entries.splice(0, n)
  }

  /** The chunks from the first entry not finished on, in order; the ledger is emptied. */
  takeUnsettled (): Chunk[] {
    const chunks = this.entries.flatMap(e => e.chunks)
    this.entries = []
    return chunks
  }
}
