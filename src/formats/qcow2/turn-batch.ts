// Gathering the requests made in one turn of the event loop, to handle them
// as one batch: a sequential reader or a convert asks for many clusters at
// once, and one hand-off to another thread per batch costs far less than one
// per cluster. The batch goes out after the turn's I/O callbacks and
// microtasks have had their say (setImmediate).
export class TurnBatch<T> {
  private items: T[] = []
  private scheduled = false

  constructor (private readonly flush: (batch: T[]) => void) {}

  add (item: T): void {
    this.items.push(item)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      const batch = this.items
      this.items = []
      this.flush(batch)
    })
  }
}
