// A promise-chain lock: metadata updates of one image run one at a time while
// data I/O goes on in parallel.
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve()

  run<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn)
    this.tail = result.catch(() => undefined)
    return result
  }
}
