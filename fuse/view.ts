// What the FUSE server serves: a fixed-size byte range that can be read,
// maybe written, and asked what is allocated. Every `Image` is a View; the
// small layers in views/ (read-only guard, partition window) wrap a View in
// nbdkit's filter style, so any file in the mount is a stack of them.
import { WIDE_STATUS, type ExtentKind, type StatusOptions } from '../src/block/types.js'

export interface ViewStatus {
  kind: ExtentKind
  /** bytes from the queried offset with this status (> 0) */
  length: number
  /** 'data' that is known to read as zeros (a hole in the host file) */
  zero?: boolean
  /** where plain data lives in its host file; absent for compressed or encrypted data */
  hostOffset?: number
}

export interface View {
  readonly size: number
  readonly readOnly: boolean
  read(buf: Buffer, offset: number): Promise<void>
  /** warm the caches for a later read, copying nothing out (Image.prefetch); optional */
  prefetch?(offset: number, length: number): Promise<void>
  write(buf: Buffer, offset: number): Promise<void>
  writeZeroes(offset: number, length: number, opts?: { unmap?: boolean }): Promise<void>
  discard(offset: number, length: number): Promise<void>
  /** allocation of [offset, offset+length) through everything below the view */
  blockStatus(offset: number, length: number, opts?: StatusOptions): Promise<ViewStatus>
  flush(): Promise<void>
}

/** Bytes of `view` that really hold data (what st_blocks should count). */
export async function allocatedBytes (view: View): Promise<number> {
  let total = 0
  let pos = 0
  while (pos < view.size) {
    const st = await view.blockStatus(pos, view.size - pos, WIDE_STATUS)
    const len = Math.max(1, Math.min(st.length, view.size - pos))
    if (st.kind === 'data' && !st.zero) total += len
    pos += len
  }
  return total
}
