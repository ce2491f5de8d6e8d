// Cache mode unsafe (convert's default for its target, -t unsafe elsewhere,
// cache.no-flush=on): flushes do nothing, as in qemu, where they are what
// made a 512 MiB raw->qcow2 convert on ext4 wait ~0.3 s for writeback.
// Counted by wrapping fs.fdatasync, which FileStore.flush goes through
// (syncBuiltinESMExports: FileStore imports it by name).
import t from 'tap'
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { FileStore } from '../src/io/file-store.js'
import { openImage } from '../src/block/open.js'
import { qemuImgOk } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'

let syncs = 0
const realSync = fs.fdatasync
t.before(() => {
  fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => { syncs++; realSync(fd, cb) }) as typeof fs.fdatasync
  syncBuiltinESMExports()
})
t.teardown(() => {
  fs.fdatasync = realSync
  syncBuiltinESMExports()
})

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-noflush-'))
t.teardown(() => fs.rmSync(dir, { recursive: true }))

t.test('a FileStore opened with noFlush never syncs; a plain one does', async t => {
  const file = path.join(dir, 'plain')
  fs.writeFileSync(file, Buffer.alloc(4096))
  for (const noFlush of [true, false]) {
    const store = await FileStore.open(file, { writable: true, noFlush })
    syncs = 0
    await store.write(Buffer.alloc(512, 1), 0)
    await store.flush()
    await store.close()
    t.equal(syncs, noFlush ? 0 : 1, `noFlush=${noFlush}`)
  }
})

t.test('qcow2 writes through a chain: no sync with noFlush or cache.no-flush=on, syncs otherwise', async t => {
  const base = path.join(dir, 'base.qcow2')
  const top = path.join(dir, 'top.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', base, '4M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top])
  const cases: Array<[string, { noFlush?: boolean, options?: Record<string, string> }, boolean]> = [
    ['noFlush', { noFlush: true }, false],
    ['cache.no-flush=on', { options: { 'cache.no-flush': 'on' } }, false],
    ['cache.no-flush=off wins over noFlush', { noFlush: true, options: { 'cache.no-flush': 'off' } }, true],
    ['default', {}, true],
  ]
  for (const [i, [name, opts, wantSyncs]] of cases.entries()) {
    const img = await openImage(top, { readOnly: false, writableBacking: true, ...opts })
    syncs = 0
    // allocating writes in both layers make qcow2 order its metadata with flushes
    await img.write(Buffer.alloc(65536, 7), 65536 * (2 * i + 1))
    await img.backing!.write(Buffer.alloc(65536, 8), 65536 * (2 * i + 1))
    await img.backing!.flush()
    await img.flush()
    await img.close()
    if (wantSyncs) t.ok(syncs > 0, `${name}: synced (${syncs})`)
    else t.equal(syncs, 0, `${name}: never synced`)
  }
  qemuImgOk(['check', '-q', top])
  qemuImgOk(['check', '-q', base])
})

t.test('bad cache.no-flush / cache.direct values: qemu-img\'s messages', async t => {
  const img = path.join(dir, 'v.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', img, '1M'])
  for (const opts of [
    'cache.no-flush=maybe', 'cache.direct=maybe', 'cache.direct=maybe,cache.no-flush=maybe',
    'cache.no-flush=yes', 'cache.no-flush=n', 'cache.direct=on,cache.no-flush=off',
  ]) {
    sameAsQemu(t, ['info', '--image-opts', `driver=qcow2,${opts},file.filename=${img}`])
  }
  sameAsQemu(t, ['info', '--image-opts', `driver=qcow2,cache.no-flush=maybe,file.filename=${path.join(dir, 'missing')}`])
})
