// `info` must print exactly what qemu-img prints for every kind of image:
// snapshots, bitmaps, data files, dirty/corrupt bits, chains (and their
// failures), raw files, and through --image-opts, --object, -U, -f.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { sameAsQemuFast } from './helpers/fast.js'
import { qcow2Variants, dropBackingFormat } from './helpers/variants.js'

async function infoBoth (t: Test, dir: string, name: string, extra: string[] = []): Promise<void> {
  for (const output of ['human', 'json']) await sameAsQemuFast(t, ['info', `--output=${output}`, ...extra, name], dir)
}

for (const v of qcow2Variants()) {
  t.test(`info: ${v.name}`, async t => {
    const dir = t.testdir()
    const name = v.build(dir)
    await infoBoth(t, dir, name)
    if (/chain/.test(v.name)) await infoBoth(t, dir, name, ['--backing-chain'])
  })
}

function setBits (file: string, offset: number, bits: bigint): void {
  const fd = fs.openSync(file, 'r+')
  const b = Buffer.alloc(8)
  fs.readSync(fd, b, 0, 8, offset)
  b.writeBigUInt64BE(b.readBigUInt64BE(0) | bits)
  fs.writeSync(fd, b, 0, 8, offset)
  fs.closeSync(fd)
}

t.test('info: dirty, corrupt, lazy refcounts, unknown compatible and autoclear bits', async t => {
  const dir = t.testdir()
  const mk = (name: string, opts = 'compat=1.1') => qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', opts, name, '1M'], { cwd: dir })
  mk('dirty.qcow2'); setBits(path.join(dir, 'dirty.qcow2'), 72, 1n)
  mk('corrupt.qcow2'); setBits(path.join(dir, 'corrupt.qcow2'), 72, 2n)
  mk('lazy.qcow2', 'lazy_refcounts=on')
  mk('compat.qcow2'); setBits(path.join(dir, 'compat.qcow2'), 80, 1n << 9n)
  mk('autoclear.qcow2'); setBits(path.join(dir, 'autoclear.qcow2'), 88, 1n << 7n)
  for (const n of ['dirty.qcow2', 'corrupt.qcow2', 'lazy.qcow2', 'compat.qcow2', 'autoclear.qcow2']) await infoBoth(t, dir, n)
})

t.test('info: snapshots with VM state, clocks, icount', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'img.qcow2', '1M'], { cwd: dir })
  for (const s of ['one', 'a much longer snapshot name than the column', '3']) qemuImgOk(['snapshot', '-c', s, 'img.qcow2'], { cwd: dir })
  await infoBoth(t, dir, 'img.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'v2.qcow2', '1M'], { cwd: dir })
  qemuImgOk(['snapshot', '-c', 'old', 'v2.qcow2'], { cwd: dir })
  await infoBoth(t, dir, 'v2.qcow2')
})

t.test('info: data files, present and missing', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'data_file=img.data', 'img.qcow2', '2M'], { cwd: dir })
  qemuIoOk(['write -P 1 0 1M'], 'img.qcow2', [], { cwd: dir })
  await infoBoth(t, dir, 'img.qcow2')
  fs.mkdirSync(path.join(dir, 'elsewhere'))
  await infoBoth(t, path.join(dir, 'elsewhere'), '../img.qcow2')
  await infoBoth(t, dir, 'driver=qcow2,file.filename=img.qcow2,data-file.filename=img.data', ['--image-opts'])
})

t.test('info: backing chains, missing backing files, loops', async t => {
  const dir = t.testdir()
  const create = (args: string[]) => qemuImgOk(['create', '-q', '-f', 'qcow2', ...args], { cwd: dir })
  create(['base.qcow2', '1M'])
  create(['-b', 'base.qcow2', '-F', 'qcow2', 'mid.qcow2', '2M'])
  create(['-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2', '3M'])
  await infoBoth(t, dir, 'top.qcow2', ['--backing-chain'])
  await infoBoth(t, dir, path.join(dir, 'top.qcow2'), ['--backing-chain'])
  create(['-u', '-b', 'gone.qcow2', '-F', 'qcow2', 'orphan.qcow2', '1M'])
  await infoBoth(t, dir, 'orphan.qcow2')
  await infoBoth(t, dir, 'orphan.qcow2', ['--backing-chain'])
  create(['-u', '-b', 'loop2.qcow2', '-F', 'qcow2', 'loop1.qcow2', '1M'])
  create(['-u', '-b', 'loop1.qcow2', '-F', 'qcow2', 'loop2.qcow2', '1M'])
  await infoBoth(t, dir, 'loop1.qcow2', ['--backing-chain'])
  create(['-u', '-b', 'self.qcow2', '-F', 'qcow2', 'other.qcow2', '1M'])
  fs.renameSync(path.join(dir, 'other.qcow2'), path.join(dir, 'self.qcow2'))
  await infoBoth(t, dir, 'self.qcow2', ['--backing-chain'])
  create(['-u', '-b', 'base.qcow2', '-F', 'raw', 'wrongfmt.qcow2', '1M'])
  await infoBoth(t, dir, 'wrongfmt.qcow2', ['--backing-chain'])
  create(['-b', 'base.qcow2', '-F', 'qcow2', 'probed.qcow2', '1M'])
  dropBackingFormat(path.join(dir, 'probed.qcow2'))
  await infoBoth(t, dir, 'probed.qcow2', ['--backing-chain'])
  fs.mkdirSync(path.join(dir, 'sub'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', '../base.qcow2', '-F', 'qcow2', 'sub/rel.qcow2', '1M'], { cwd: dir })
  await infoBoth(t, dir, 'sub/rel.qcow2', ['--backing-chain'])
})

t.test('info: raw files and options', async t => {
  const dir = t.testdir()
  fs.writeFileSync(path.join(dir, 'tiny.raw'), 'abc')
  qemuImgOk(['create', '-q', '-f', 'raw', 'big.raw', '10G'], { cwd: dir })
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'img.qcow2', '1M'], { cwd: dir })
  for (const n of ['tiny.raw', 'big.raw']) await infoBoth(t, dir, n)
  await infoBoth(t, dir, 'img.qcow2', ['-f', 'raw'])
  await infoBoth(t, dir, 'img.qcow2', ['-U'])
  await infoBoth(t, dir, 'img.qcow2', ['--object', 'secret,id=s0,data=x'])
  await infoBoth(t, dir, 'driver=qcow2,file.filename=img.qcow2', ['--image-opts'])
  await infoBoth(t, dir, 'driver=raw,file.filename=img.qcow2', ['--image-opts'])
  for (const bad of [['--object', 'foo,id=x'], ['--object', 'secret,id=x'], ['--image-opts', '-f', 'qcow2'], ['-f', 'qcow2']]) {
    await sameAsQemuFast(t, ['info', ...bad, bad.includes('-f') && !bad.includes('--image-opts') ? 'tiny.raw' : 'img.qcow2'], dir)
  }
})
