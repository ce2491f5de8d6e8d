// How qemu reports the progress of a qcow2 amend that runs several long
// operations (upgrade, refcount width change, downgrade): each reports
// (offset, total) of its own work; the overall figure counts the work of
// the finished operations, the current one's, and projects the remaining
// operations to cost as much on average as the ones seen so far. Observed
// sequences (e.g. 0, 25, 50 for an upgrade, then 0.13 when the refcount
// change starts) follow from this rule.
export type StatusCallback = (offset: number, total: number) => void

export class AmendProgress {
  private current = -1
  private offsetCompleted = 0
  private lastWorkSize = 0
  private operationsCompleted = 0

  constructor (private readonly totalOperations: number, private readonly report?: StatusCallback) {}

  /** The callback operation number `op` (0, 1, ... in the order they run) reports through. */
  operation (op: number): StatusCallback {
    return (offset, total) => {
      if (!this.report) return
      if (op !== this.current) {
        if (this.current >= 0) {
          this.offsetCompleted += this.lastWorkSize
          this.operationsCompleted++
        }
        this.current = op
      }
      this.lastWorkSize = total
      const currentWork = this.offsetCompleted + total
      const projected = Math.floor(currentWork * (this.totalOperations - this.operationsCompleted - 1) / (this.operationsCompleted + 1))
      this.report(this.offsetCompleted + offset, currentWork + projected)
    }
  }
}
