// The view layers on their own, over a Buffer-backed view that records what
// reaches it: the window never lets a request out, the read-only guard
// refuses every change with EROFS, read-ahead prepares only costly data
// ahead of a sequential reader.
import t from 'tap'
import { BlockError } from '../src/cli/errors.js'
import type { View, ViewStatus } from '../fuse/view.js'
import { allocatedBytes } from '../fuse/view.js'
import { WindowView } from '../fuse/views/window.js'
import { ReadOnlyView } from '../fuse/views/read-only.js'
import { ReadAheadView, READ_AHEAD_BYTES } from '../fuse/views/read-ahead.js'

/** bytes in memory; the first `costly` bytes act like compressed data (no host offset) */
class MemoryView implements View {
  readonly readOnly = false
  reads: Array<[number, number]> = []
  constructor (readonly bytes: Buffer, private readonly costly = 0, private readonly allocatedFrom = 0) {}
  get size (): number { return this.bytes.length }
  async read (buf: Buffer, offset: number): Promise<void> { this.reads.push([offset, buf.length]); this.bytes.copy(buf, 0, offset, offset + buf.length) }
  async write (buf: Buffer, offset: number): Promise<void> { buf.copy(this.bytes, offset) }
  async writeZeroes (offset: number, length: number): Promise<void> { this.bytes.fill(0, offset, offset + length) }
  async discard (): Promise<void> {}
  async flush (): Promise<void> {}
  async blockStatus (offset: number, length: number): Promise<ViewStatus> {
    if (offset < this.allocatedFrom) return { kind: 'unallocated', length: Math.min(length, this.allocatedFrom - offset) }
    if (offset < this.costly) return { kind: 'data', length: Math.min(length, this.costly - offset) }
    return { kind: 'data', length, hostOffset: offset }
  }
}

t.test('a window maps offsets and refuses to reach outside', async t => {
  const inner = new MemoryView(Buffer.from('0123456789abcdef'))
  const w = new WindowView(inner, 4, 8)
  const b = Buffer.alloc(3)
  await w.read(b, 5)
  t.equal(b.toString(), '9ab')
  await w.write(Buffer.from('XY'), 0)
  t.equal(inner.bytes.toString(), '0123XY6789abcdef')
  await t.rejects(w.read(Buffer.alloc(2), 7), { errno: 'EIO' })
  await t.rejects(w.write(Buffer.alloc(1), -1), { errno: 'EIO' })
  await t.rejects(w.writeZeroes(8, 1), { errno: 'EIO' })
  t.throws(() => new WindowView(inner, 10, 7), BlockError)
  t.same(await w.blockStatus(2, 100).catch(e => e.errno), 'EIO')
  t.same((await w.blockStatus(2, 6)).length, 6)
})

t.test('the read-only guard', async t => {
  const inner = new MemoryView(Buffer.from('abcd'))
  const ro = new ReadOnlyView(inner)
  t.equal(ro.readOnly, true)
  for (const p of [ro.write(), ro.writeZeroes(), ro.discard()]) await t.rejects(p, { errno: 'EROFS' })
  t.equal(inner.bytes.toString(), 'abcd')
  const b = Buffer.alloc(2)
  await ro.read(b, 1)
  t.equal(b.toString(), 'bc')
})

t.test('allocated bytes count data only', async t => {
  t.equal(await allocatedBytes(new MemoryView(Buffer.alloc(1000), 0, 300)), 700)
})

t.test('read-ahead prepares costly data ahead of sequential readers only', async t => {
  const size = 8 << 20
  const costly = new MemoryView(Buffer.alloc(size), size)
  const ra = new ReadAheadView(costly)
  const chunk = 128 << 10
  await ra.read(Buffer.alloc(chunk), 3 << 20) // a random read: nothing ahead
  await new Promise(resolve => setImmediate(resolve))
  t.same(costly.reads, [[3 << 20, chunk]])
  costly.reads = []
  await ra.read(Buffer.alloc(chunk), 0)
  await ra.read(Buffer.alloc(chunk), chunk) // sequential now
  for (let i = 0; i < 50; i++) await new Promise(resolve => setImmediate(resolve))
  const ahead = costly.reads.filter(([off]) => off >= 2 * chunk)
  t.ok(ahead.length > 0, 'read ahead of the reader')
  t.ok(ahead.every(([off, len]) => off + len <= 2 * chunk + READ_AHEAD_BYTES), 'within the window')

  const plain = new MemoryView(Buffer.alloc(size), 0)
  const ra2 = new ReadAheadView(plain)
  await ra2.read(Buffer.alloc(chunk), 0)
  await ra2.read(Buffer.alloc(chunk), chunk)
  for (let i = 0; i < 50; i++) await new Promise(resolve => setImmediate(resolve))
  t.same(plain.reads.map(r => r[0]), [0, chunk], 'plain data is left to the page cache')
})

t.test('read-ahead prefetches through the view when it can, copying nothing', async t => {
  const size = 8 << 20
  const chunk = 128 << 10
  class PrefetchingView extends MemoryView {
    prefetched: Array<[number, number]> = []
    async prefetch (offset: number, length: number): Promise<void> { this.prefetched.push([offset, length]) }
  }
  const inner = new PrefetchingView(Buffer.alloc(size), size)
  const ra = new ReadAheadView(inner)
  await ra.read(Buffer.alloc(chunk), 0)
  await ra.read(Buffer.alloc(chunk), chunk)
  for (let i = 0; i < 50; i++) await new Promise(resolve => setImmediate(resolve))
  t.ok(inner.prefetched.length > 0, 'prefetched ahead of the reader')
  t.same(inner.reads.map(r => r[0]), [0, chunk], 'only the reader\'s own reads')
  // a read-only guard passes prefetch through
  const guarded = new PrefetchingView(Buffer.alloc(size), size)
  await new ReadOnlyView(guarded).prefetch!(4096, 8192)
  t.same(guarded.prefetched, [[4096, 8192]])
})
