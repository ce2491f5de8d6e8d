// A window [start, start+length) of another view: a partition of disk.raw.
// Offsets are checked here so a request can never reach outside the window.
import { BlockError } from '../../src/cli/errors.js'
import type { View, ViewStatus } from '../view.js'
import type { StatusOptions } from '../../src/block/types.js'

export class WindowView implements View {
  constructor (private readonly inner: View, readonly start: number, readonly size: number) {
    if (start < 0 || size < 0 || start + size > inner.size) {
      throw new BlockError(`Window ${start}+${size} lies outside a view of ${inner.size} bytes`, 'EINVAL')
    }
  }

  get readOnly (): boolean { return this.inner.readOnly }

  private check (offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new BlockError(`Access beyond end of window (offset ${offset}, length ${length}, size ${this.size})`, 'EIO')
    }
  }

  async read (buf: Buffer, offset: number): Promise<void> {
    this.check(offset, buf.length)
    await this.inner.read(buf, this.start + offset)
  }

  async write (buf: Buffer, offset: number): Promise<void> {
    this.check(offset, buf.length)
    await this.inner.write(buf, this.start + offset)
  }

  async writeZeroes (offset: number, length: number, opts?: { unmap?: boolean }): Promise<void> {
    this.check(offset, length)
    await this.inner.writeZeroes(this.start + offset, length, opts)
  }

  async discard (offset: number, length: number): Promise<void> {
    this.check(offset, length)
    await this.inner.discard(this.start + offset, length)
  }

  async blockStatus (offset: number, length: number, opts?: StatusOptions): Promise<ViewStatus> {
    this.check(offset, length)
    const st = await this.inner.blockStatus(this.start + offset, length, opts)
    return { ...st, length: Math.min(st.length, length) }
  }

  flush (): Promise<void> { return this.inner.flush() }
}
