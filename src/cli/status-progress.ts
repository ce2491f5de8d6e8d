// qemu-img's -p line for commands whose progress comes from status callbacks
// (amend): the percentage is set outright, so it can go down when a new
// operation starts, and 0 is printed again when an operation reports it.
// Same line format and single-precision arithmetic as Progress.
import { out } from './output.js'
import { printfFixed } from './progress.js'

const f32 = Math.fround

export class StatusProgress {
  private lastPrint = 0

  /** `minSkip` in percent; prints the 0.00 line at once, as qemu_progress_print(0, 100) does */
  constructor (private readonly minSkip: number) {
    this.emit(0)
  }

  set (percent: number): void {
    const value = f32(percent)
    if (value > f32(this.lastPrint + this.minSkip) || value < f32(this.lastPrint - this.minSkip) || value === 0 || value === 100) {
      this.lastPrint = value
      this.emit(value)
    }
  }

  private emit (value: number): void {
    out(`    (${printfFixed(value, 2)}/100%)\r`)
  }
}
