// Crash safety of the qcow2 write path: a child process doing random writes
// is killed with SIGKILL at a random point; qemu-img check must then find no
// corruption (leaked clusters are allowed), and the image must stay usable.
import t from 'tap'
import path from 'node:path'
import { runAndKill } from './helpers/kill-child.js'
import { openImage } from '../src/block/open.js'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { qemuCheck } from './helpers/write-model.js'

const CHILD = path.join(import.meta.dirname, 'helpers/crash-child.ts')

const configs = [
  { opts: 'cluster_size=512', backing: false },
  { opts: 'cluster_size=4k,refcount_bits=1', backing: true },
  { opts: 'cluster_size=64k,extended_l2=on', backing: true },
  { opts: 'cluster_size=64k,compat=0.10', backing: false },
  { opts: 'cluster_size=16k,refcount_bits=64,compression_type=zstd', backing: false },
]

t.test('SIGKILL during random writes leaves no corruption', async t => {
  const dir = t.testdir()
  let n = 0
  for (const cfg of configs) {
    for (let round = 0; round < 2; round++) {
      const file = path.join(dir, `crash${++n}.qcow2`)
      const args = ['create', '-q', '-f', 'qcow2', '-o', cfg.opts]
      if (cfg.backing) {
        const base = path.join(dir, `base${n}.qcow2`)
        qemuImgOk(['create', '-q', '-f', 'qcow2', base, '3M'])
        qemuIoOk(['write -P 0x5a 0 3M'], base)
        args.push('-b', base, '-F', 'qcow2')
      }
      qemuImgOk([...args, file, '2M'])
      const seed = (Math.random() * 2 ** 31) >>> 0
      const ops = 1 + Math.floor(Math.random() * 300)
      const done = await runAndKill(CHILD, [file, String(seed)], ops)
      const check = qemuCheck(file)
      t.equal(check.corruptions + check.checkErrors, 0, `${cfg.opts}: no corruption after ${done} ops (seed ${seed})`, { check: check.raw })
      // the image stays writable: one more write and a clean close
      const img = await openImage(file, { readOnly: false })
      await img.write(Buffer.alloc(1000, 1), 12345)
      await img.close()
      const after = qemuCheck(file)
      t.equal(after.corruptions + after.checkErrors, 0, `${cfg.opts}: still no corruption after reuse`, { check: after.raw })
    }
  }
})
