// qemu-img's -p progress line for commit and rebase: "    (12.34/100%)\r" on
// stdout. qemu keeps the state in single-precision floats: a new line is
// printed once the value moved by more than `minSkip` percent, or when it
// is 100; the value never goes past 100.
import { out } from './output.js'

const f32 = Math.fround

/** printf("%.2f", x) for a float x >= 0: ties round to even, as glibc does on the exact binary value. */
export function fixed2 (x: number): string {
  const scaled = x * 100 // exact for floats: at most 24 significant bits times a small integer
  const floor = Math.floor(scaled)
  const frac = scaled - floor
  const n = frac > 0.5 || (frac === 0.5 && floor % 2 === 1) ? floor + 1 : floor
  const s = String(n).padStart(3, '0')
  return `${s.slice(0, -2)}.${s.slice(-2)}`
}

export class JobProgress {
  private current = 0
  private lastPrint = 0

  /** Prints the 0.00 line at once when enabled. */
  constructor (readonly enabled: boolean, private readonly minSkip: number) {
    if (enabled) this.emit()
  }

  /** qemu_progress_print(delta, max): add `delta` percent of `max`, or (max = 0) set the value to `delta`. */
  print (delta: number, max: number): void {
    if (!this.enabled) return
    let value = max === 0 ? f32(delta) : f32(this.current + f32(f32(delta / 100) * max))
    if (value > 100) value = 100
    if (value > this.current) this.current = value
    if (value > f32(this.lastPrint + this.minSkip) || value < f32(this.lastPrint - this.minSkip) || value === 100) {
      this.lastPrint = this.current
      this.emit()
    }
  }

  /** The line is finished with a newline. */
  end (): void {
    if (this.enabled) out('\n')
  }

  private emit (): void {
    out(`    (${fixed2(this.current)}/100%)\r`)
  }
}
