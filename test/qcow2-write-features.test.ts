// qcow2 write-path features beyond plain data: internal snapshots (copy on
// write of shared clusters and tables), external data files, lazy refcounts
// (the dirty bit), and the corrupt bit (set when a write would hit metadata,
// refused read-write afterwards).
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImg, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { fillBytes, qemuCheck, qemuRaw } from './helpers/write-model.js'

function clean (t: Test, file: string): void {
  const c = qemuCheck(file)
  t.same([c.corruptions, c.leaks, c.checkErrors], [0, 0, 0], 'qemu-img check is clean', { check: c.raw })
}

t.test('writes into an image with an internal snapshot keep the snapshot intact', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'snap.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', file, '256k'])
  qemuIoOk(['write -P 1 0 256k'], file)
  qemuImgOk(['snapshot', '-c', 's1', file])
  const img = await openImage(file, { readOnly: false })
  const model = Buffer.alloc(256 << 10, 1)
  await img.write(fillBytes(10000, 7), 5000); fillBytes(10000, 7).copy(model, 5000)
  await img.writeZeroes(64 << 10, 8192, { unmap: true }); model.fill(0, 64 << 10, (64 << 10) + 8192)
  await img.discard(128 << 10, 16384); model.fill(0, 128 << 10, (128 << 10) + 16384)
  await img.writeCompressed!(fillBytes(4096, 9), 200 << 10); fillBytes(4096, 9).copy(model, 200 << 10)
  await img.close()
  clean(t, file)
  t.ok(qemuRaw(file, dir).equals(model), 'active layer has the new data')
  const snapRaw = path.join(dir, 'snap.raw')
  qemuImgOk(['convert', '-l', 's1', '-O', 'raw', file, snapRaw])
  t.ok(fs.readFileSync(snapRaw).equals(Buffer.alloc(256 << 10, 1)), 'the snapshot still reads as before')
})

t.test('external data files: data at guest offsets, raw file kept valid', async t => {
  const dir = t.testdir()
  for (const raw of [false, true]) {
    const file = path.join(dir, `df${raw}.qcow2`)
    const data = path.join(dir, `df${raw}.data`)
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', `data_file=${data},data_file_raw=${raw ? 'on' : 'off'}`, file, '1M'])
    const img = await openImage(file, { readOnly: false })
    const model = Buffer.alloc(1 << 20)
    await img.write(fillBytes(70000, 3), 1000); fillBytes(70000, 3).copy(model, 1000)
    await img.write(fillBytes(65536, 4), 512 << 10); fillBytes(65536, 4).copy(model, 512 << 10)
    await img.writeZeroes(512 << 10, 65536, { unmap: true }); model.fill(0, 512 << 10, (512 << 10) + 65536)
    await img.close()
    clean(t, file)
    t.ok(qemuRaw(file, dir).equals(model), `qemu-img reads the model (data_file_raw=${raw})`)
    if (raw) t.ok(fs.readFileSync(data).subarray(0, 1 << 20).equals(model), 'the raw data file is the guest view')
  }
})

t.test('lazy refcounts: dirty bit while open, cleared on close', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'lazy.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', file, '1M'])
  const img = await openImage(file, { readOnly: false })
  await img.write(Buffer.alloc(4096, 5), 0)
  t.equal(fs.readFileSync(file).readBigUInt64BE(72) & 1n, 1n, 'dirty bit set after the first write')
  await img.close()
  t.equal(fs.readFileSync(file).readBigUInt64BE(72) & 1n, 0n, 'dirty bit cleared on close')
  clean(t, file)
})

t.test('a write that would land in metadata marks the image corrupt', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'bad.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', file, '1M'])
  qemuIoOk(['write -P 1 0 64k'], file)
  // L2 table at 0x40000; point entry 0 at the L1 table (0x30000), with OFLAG_COPIED
  const fd = fs.openSync(file, 'r+')
  const entry = Buffer.alloc(8)
  entry.writeBigUInt64BE((1n << 63n) | 0x30000n)
  fs.writeSync(fd, entry, 0, 8, 0x40000)
  fs.closeSync(fd)
  const warnings: string[] = []
  const img = await openImage(file, { readOnly: false, onWarning: m => warnings.push(m) })
  await t.rejects(img.write(Buffer.alloc(512, 2), 0), { errno: 'EIO' })
  await img.close()
  t.same(warnings, ['qcow2: Marking image as corrupt: Preventing invalid write on metadata (overlaps with active L1 table); further corruption events will be suppressed\n'])
  t.equal(fs.readFileSync(file).readBigUInt64BE(72) & 2n, 2n, 'corrupt bit set')
  await t.rejects(openImage(file, { readOnly: false }), { message: 'qcow2: Image is corrupt; cannot be opened read/write' })
  const r = qemuImg(['check', file])
  t.equal(r.code, 2, 'qemu-img check reports the corruption too')
})
