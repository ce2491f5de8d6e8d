// -r: keep the average copy rate at or below a number of bytes per second.
// A request is let through once the bytes before it have had their time.
import { setTimeout as sleep } from 'node:timers/promises'

export class RateLimiter {
  private readonly start = performance.now()
  private granted = 0

  constructor (private readonly bytesPerSecond: number) {}

  async take (bytes: number): Promise<void> {
    const due = this.start + this.granted / this.bytesPerSecond * 1000
    this.granted += bytes
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
  }
}
