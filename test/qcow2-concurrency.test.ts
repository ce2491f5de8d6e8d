// Concurrent requests through one qcow2 Image (as FUSE and convert -m issue
// them): many writes into the same unallocated clusters at once, with
// copy-on-write from a backing file, next to compressed writes, zero writes,
// discards and reads. The result must equal the model and pass qemu-img check.
import t from 'tap'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { fillBytes, qemuCheck, qemuRaw } from './helpers/write-model.js'

const configs = [
  { opts: 'cluster_size=64k', backing: true },
  { opts: 'cluster_size=64k,extended_l2=on', backing: true },
  { opts: 'cluster_size=4k,refcount_bits=1', backing: false },
  { opts: 'cluster_size=512,compat=0.10', backing: true },
]

for (const cfg of configs) {
  t.test(`concurrent requests (${cfg.opts}${cfg.backing ? ', backing' : ''})`, async t => {
    const dir = t.testdir()
    const file = path.join(dir, 'img.qcow2')
    const cs = Number(/cluster_size=(\d+)(k?)/.exec(cfg.opts)!.slice(1).reduce((n, k) => k === 'k' ? String(Number(n) * 1024) : n))
    const clusters = 48
    const size = clusters * cs
    const model = Buffer.alloc(size)
    const args = ['create', '-q', '-f', 'qcow2', '-o', cfg.opts]
    if (cfg.backing) {
      const base = path.join(dir, 'base.qcow2')
      qemuImgOk(['create', '-q', '-f', 'qcow2', base, String(size)])
      qemuIoOk([`write -P 0x3c 0 ${size}`], base)
      model.fill(0x3c)
      args.push('-b', base, '-F', 'qcow2')
    }
    qemuImgOk([...args, file, String(size)])
    const img = await openImage(file, { readOnly: false })
    const jobs: Array<Promise<void>> = []
    // clusters 0..15: eight writers each own every eighth slice of these clusters
    const slice = cs / 8
    for (let w = 0; w < 8; w++) {
      for (let c = 0; c < 16; c++) {
        const off = c * cs + w * slice
        const data = fillBytes(slice, w * 100 + c)
        data.copy(model, off)
        jobs.push(img.write(data, off))
      }
    }
    // clusters 16..47: one kind of request per cluster, all at once
    for (let c = 16; c < clusters; c++) {
      const off = c * cs
      switch (c % 4) {
        case 0: {
          const data = fillBytes(cs, c, c % 8 === 0)
          data.copy(model, off)
          jobs.push(img.writeCompressed!(data, off))
          break
        }
        case 1:
          model.fill(0, off, off + cs)
          jobs.push(img.writeZeroes(off, cs, { unmap: c % 8 === 1 }))
          break
        case 2:
          // discard only frees; with a version 2 backing chain the data shows through again
          jobs.push(img.discard(off, cs))
          if (!cfg.opts.includes('compat=0.10') || !cfg.backing) model.fill(0, off, off + cs)
          break
        default: {
          const data = fillBytes(cs - 100, c)
          data.copy(model, off + 50)
          jobs.push(img.write(data, off + 50))
        }
      }
    }
    // reads in the middle of it all must not fail
    for (let c = 0; c < clusters; c += 5) jobs.push(img.read(Buffer.alloc(cs), c * cs))
    await Promise.all(jobs)
    const back = Buffer.alloc(size)
    await img.read(back, 0)
    t.ok(back.equals(model), 'qimg reads back the model')
    await img.close()
    const check = qemuCheck(file)
    t.same([check.corruptions, check.leaks, check.checkErrors], [0, 0, 0], 'qemu-img check is clean', { check: check.raw })
    t.ok(qemuRaw(file, dir).equals(model), 'qemu-img sees the model')
  })
}
