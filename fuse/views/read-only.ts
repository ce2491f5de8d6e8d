// The read-only guard: reads and status pass through, every change fails
// with EROFS, so an image served without --overlay/--writable is never touched.
import { BlockError } from '../../src/cli/errors.js'
import type { View, ViewStatus } from '../view.js'
import type { StatusOptions } from '../../src/block/types.js'

export class ReadOnlyView implements View {
  readonly readOnly = true
  /** passed through when the inner view has it (ReadAheadView falls back to reading otherwise) */
  readonly prefetch?: (offset: number, length: number) => Promise<void>

  constructor (private readonly inner: View) {
    if (inner.prefetch) this.prefetch = (offset, length) => inner.prefetch!(offset, length)
  }

  get size (): number { return this.inner.size }

  read (buf: Buffer, offset: number): Promise<void> { return this.inner.read(buf, offset) }

  blockStatus (offset: number, length: number, opts?: StatusOptions): Promise<ViewStatus> { return this.inner.blockStatus(offset, length, opts) }

  private refuse (): Promise<never> {
    return Promise.reject(new BlockError('Read-only view', 'EROFS'))
  }

  write (): Promise<void> { return this.refuse() }
  writeZeroes (): Promise<void> { return this.refuse() }
  discard (): Promise<void> { return this.refuse() }
  async flush (): Promise<void> {}
}
