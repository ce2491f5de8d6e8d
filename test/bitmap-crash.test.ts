// Crash safety of persistent bitmaps: a child process that keeps opening an
// image, writing (setting bitmap bits), changing the set of bitmaps and
// closing (storing them) is killed with SIGKILL at a random point. qemu-img
// check must find no corruption (leaks are allowed), every bitmap must be
// either consistent or marked in use, and qemu must be able to use the image.
import t from 'tap'
import path from 'node:path'
import { runAndKill } from './helpers/kill-child.js'
import { qemuImg, qemuImgOk, qemuIo } from './helpers/run.js'
import { qemuCheck } from './helpers/write-model.js'

const CHILD = path.join(import.meta.dirname, 'helpers/bitmap-crash-child.ts')

t.test('SIGKILL while bitmaps are tracked and stored', async t => {
  const dir = t.testdir()
  for (const [n, opts] of [['64k', 'cluster_size=64k'], ['4k', 'cluster_size=4k,refcount_bits=8'], ['512', 'cluster_size=512']].entries()) {
    const file = path.join(dir, `crash${n}.qcow2`)
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', opts[1], file, '4M'])
    qemuImgOk(['bitmap', '--add', file, 'keep'])
    qemuImgOk(['bitmap', '--add', '-g', '512', '--disable', file, 'off'])
    const seed = (Math.random() * 2 ** 31) >>> 0
    const done = await runAndKill(CHILD, [file, String(seed)], 1 + Math.floor(Math.random() * 12))
    const check = qemuCheck(file)
    t.equal(check.corruptions + check.checkErrors, 0, `${opts[1]}: no corruption after ${done} cycles (seed ${seed})`, { check: check.raw })
    // the directory qemu finds is sound (bitmaps caught mid-store are marked in use)
    const info = qemuImg(['info', '--output=json', file])
    t.equal(info.code, 0, `qemu-img info opens it: ${info.stderr}`)
    const io = qemuIo(['write 0 4k'], file)
    t.equal(io.code, 0, `qemu can write the image: ${io.stderr}`)
    const after = qemuCheck(file)
    t.equal(after.corruptions + after.checkErrors, 0, 'still no corruption after qemu used it', { check: after.raw })
  }
})
