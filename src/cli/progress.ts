// qemu-img's -p progress line: "    (12.34/100%)\r" on stdout. The state is
// kept in single-precision floats, as qemu keeps it, so which updates get
// printed (a new line only once the value moved by more than `minSkip`
// percent, or reached 100) and the digits shown match byte for byte.
import { out } from './output.js'

const f32 = Math.fround

/** printf("%.Nf", x) for x >= 0: round half to even on the exact binary value (toFixed rounds ties up). */
export function printfFixed (x: number, digits: number): string {
  const s = x.toFixed(digits)
  // a tie is only possible when x*10^digits has a fractional part of exactly .5,
  // which needs x to be a dyadic rational with few bits: test exactly with BigInt
  if (!Number.isFinite(x) || x < 0 || x >= 2 ** 53) return s
  const [mant, exp] = decompose(x)
  // x = mant * 2^exp; scaled = x * 10^digits * 2 must be an odd integer for a tie
  let num = mant * 10n ** BigInt(digits) * 2n
  if (exp >= 0) return s // an integer times 10^d: never a tie
  const den = 1n << BigInt(-exp)
  if (num % den !== 0n) return s
  num /= den
  if (num % 2n === 0n) return s // not a .5 case
  const lower = (num - 1n) / 2n // floor(x * 10^d)
  const even = lower % 2n === 0n ? lower : lower + 1n
  const str = even.toString().padStart(digits + 1, '0')
  return digits === 0 ? str : `${str.slice(0, -digits)}.${str.slice(-digits)}`
}

/** x = mant * 2^exp with an integer mant (x finite, >= 0). */
function decompose (x: number): [bigint, number] {
  if (x === 0) return [0n, 0]
  let exp = 0
  let m = x
  while (!Number.isInteger(m)) { m *= 2; exp-- }
  return [BigInt(m), exp]
}

export class Progress {
  private current = 0
  private lastPrint = 0

  /** `minSkip`: convert uses 1.0, compare 2.0 (percent). Prints the 0.00 line at once when enabled. */
  constructor (readonly enabled: boolean, private readonly minSkip: number) {
    if (enabled) this.emit()
  }

  /** Report an absolute percentage (0..100). */
  update (percent: number): void {
    if (!this.enabled) return
    this.apply(f32(percent))
  }

  /**
   * Add the share `part / whole` of the work, as qemu's commands that count
   * chunks do: the share is a float percentage added to a float total.
   */
  advance (part: number, whole: number): void {
    if (!this.enabled) return
    const delta = f32(f32(f32(part) / f32(whole)) * 100)
    this.apply(f32(this.current + f32(f32(delta / 100) * 100)))
  }

  /**
   * qemu_progress_print(delta, 100), as rebase calls it once per step: add
   * `delta` percent; the value does not go past 100.
   */
  step (delta: number): void {
    if (!this.enabled) return
    this.apply(Math.min(f32(this.current + f32(f32(f32(delta) / 100) * 100)), 100))
  }

  private apply (value: number): void {
    if (value > this.current) this.current = value
    if (value > f32(this.lastPrint + this.minSkip) || value < f32(this.lastPrint - this.minSkip) || value === 100) {
      this.lastPrint = this.current
      this.emit()
    }
  }

  /** qemu_progress_end: the line is finished with a newline. */
  end (): void {
    if (this.enabled) out('\n')
  }

  private emit (): void {
    out(`    (${printfFixed(this.current, 2)}/100%)\r`)
  }
}
