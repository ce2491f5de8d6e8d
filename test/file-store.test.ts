// FileStore's positional reads: the pool path, and the inline path for data
// already in the page cache (on by default); and hole lookups (dataRun).
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { FileStore, setInlineCachedReads } from '../src/io/file-store.js'
import { native, allocIoBuffer } from '../src/io/native.js'

const SIZE = 300_000 // not a multiple of anything, and larger than one inline read

for (const where of [os.tmpdir(), '/dev/shm']) {
  t.test(`reads on ${where}, inline and not, give the file's bytes and zeros past its end`, async t => {
    if (!fs.existsSync(where)) return t.skip(`${where} missing`)
    const dir = fs.mkdtempSync(path.join(where, 'qimg-fs-'))
    t.teardown(() => { setInlineCachedReads(false); fs.rmSync(dir, { recursive: true }) })
    const file = path.join(dir, 'f')
    const bytes = crypto.randomBytes(SIZE)
    fs.writeFileSync(file, bytes) // just written: in the page cache
    const store = await FileStore.open(file, { writable: false })
    t.teardown(() => store.close())
    const n = native()
    t.ok(n?.preadCached, 'the addon has preadCached')
    const probe = Buffer.alloc(4096)
    t.equal(n!.preadCached!(store.fd, probe, 1000), 4096, 'cached data is read without the pool')
    t.same(probe, bytes.subarray(1000, 5096))
    for (const inline of [false, true]) {
      setInlineCachedReads(inline)
      for (const [offset, length] of [[0, 4096], [12345, 65536], [SIZE - 100, 4096], [SIZE, 512], [SIZE + 4096, 512], [0, SIZE + 512]]) {
        const buf = Buffer.alloc(length, 0xaa)
        const got = await store.read(buf, offset)
        const inside = Math.max(0, Math.min(length, SIZE - offset))
        t.equal(got, inside, `inline=${inline} ${offset}+${length}: count`)
        const want = Buffer.concat([bytes.subarray(offset, offset + inside), Buffer.alloc(length - inside)])
        t.ok(buf.equals(want), `inline=${inline} ${offset}+${length}: bytes`)
      }
    }
  })
}

t.test('data not in the page cache is refused inline (EAGAIN) and read through the pool instead', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-nocache-'))
  t.teardown(() => { setInlineCachedReads(false); fs.rmSync(dir, { recursive: true }) })
  const file = path.join(dir, 'f')
  const bytes = crypto.randomBytes(1 << 20)
  fs.writeFileSync(file, bytes)
  // written back, then dropped from the page cache (posix_fadvise DONTNEED through dd)
  execFileSync('sync', [file])
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
  const store = await FileStore.open(file, { writable: false })
  t.teardown(() => store.close())
  const probe = Buffer.alloc(65536)
  const n = native()!.preadCached!(store.fd, probe, 512 << 10)
  if (n !== -11) return t.skip(`this file system kept or refused the data (${n})`)
  t.pass('a read that would wait for the disk is refused, not done on the JS thread')
  setInlineCachedReads(true)
  const buf = Buffer.alloc(65536)
  t.equal(await store.read(buf, 512 << 10), 65536)
  t.ok(buf.equals(bytes.subarray(512 << 10, (512 << 10) + 65536)), 'the pool read gives the bytes')
})

t.test('I/O buffers are page-aligned when the addon is there', async t => {
  // O_DIRECT reads need aligned memory (EINVAL otherwise): they tell from JS
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-align-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true }))
  const file = path.join(dir, 'f')
  fs.writeFileSync(file, crypto.randomBytes(1 << 20))
  let fd: number
  try { fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT) } catch { return t.skip('no O_DIRECT here') }
  t.teardown(() => fs.closeSync(fd))
  const misaligned = Buffer.allocUnsafeSlow(65536 + 16).subarray(16)
  t.throws(() => fs.readSync(fd, misaligned, 0, 65536, 0), { code: 'EINVAL' }, 'a misaligned buffer is refused (the check works)')
  const buf = allocIoBuffer(1 << 20)
  t.equal(buf.length, 1 << 20)
  t.equal(fs.readSync(fd, buf, 0, buf.length, 0), 1 << 20, 'an I/O buffer is accepted')
  t.ok(buf.equals(fs.readFileSync(file)))
})

t.test('dataRun: a read-only store remembers the runs it found; a writable one asks each time', async t => {
  const dir = fs.mkdtempSync(path.join('/dev/shm', 'qimg-runs-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true }))
  const file = path.join(dir, 'sparse')
  const fd = fs.openSync(file, 'w')
  fs.writeSync(fd, Buffer.alloc(65536, 1), 0, 65536, 1 << 20)
  fs.ftruncateSync(fd, 4 << 20)
  fs.closeSync(fd)
  const expected = [
    [0, { data: false, end: 1 << 20 }], [4096, { data: false, end: 1 << 20 }], [1 << 20, { data: true, end: (1 << 20) + 65536 }],
    [(1 << 20) + 4096, { data: true, end: (1 << 20) + 65536 }], [(1 << 20) + 65536, { data: false, end: 4 << 20 }], [4 << 20, { data: false, end: 4 << 20 }],
  ] as const
  const ro = await FileStore.open(file, { writable: false })
  t.teardown(() => ro.close())
  for (let pass = 0; pass < 2; pass++) {
    for (const [at, run] of expected) t.same(await ro.dataRun(at), run, `read-only, pass ${pass}, at ${at}`)
  }
  // a writable store sees its own changes (and anyone else's)
  const rw = await FileStore.open(file, { writable: true })
  t.teardown(() => rw.close())
  t.same(await rw.dataRun(0), { data: false, end: 1 << 20 })
  await rw.write(Buffer.alloc(4096, 2), 0)
  t.same(await rw.dataRun(0), { data: true, end: 4096 })
})
