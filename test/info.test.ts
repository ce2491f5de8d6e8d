import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'

t.test('info matches qemu-img for a qcow2 chain and raw files', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-f', 'qcow2', f('base.qcow2'), '4M'])
  qemuIoOk(['write -P 1 0 64k'], f('base.qcow2'))
  qemuImgOk(['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', f('top.qcow2'), '8M'])
  qemuImgOk(['create', '-f', 'raw', f('disk.raw'), '1000'])
  for (const name of ['base.qcow2', 'top.qcow2', 'disk.raw']) {
    for (const output of ['human', 'json']) {
      sameAsQemu(t, ['info', `--output=${output}`, name], { cwd: dir })
      sameAsQemu(t, ['info', `--output=${output}`, '--backing-chain', f(name)], { cwd: dir })
    }
  }
})

t.test('info refuses bad command lines like qemu-img', async t => {
  const dir = t.testdir()
  sameAsQemu(t, ['info'], { cwd: dir })
  sameAsQemu(t, ['info', '-z', 'x'], { cwd: dir })
  sameAsQemu(t, ['info', '--output'], { cwd: dir })
  sameAsQemu(t, ['info', '--output=xml', 'x'], { cwd: dir })
  sameAsQemu(t, ['info', 'missing.qcow2'], { cwd: dir })
  sameAsQemu(t, ['info', '-f', 'nosuchfmt', 'missing.qcow2'], { cwd: dir })
})
