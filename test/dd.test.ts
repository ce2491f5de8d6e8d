import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk, qimg, qemuImg } from './helpers/run.js'

// qemu-img dd's rules, including its quirks: count counts blocks from the
// start of the input (not from skip), a skip past the end prints an error but
// exits 0 with an empty output, and the output size rounds up to a sector.
t.test('dd copies what qemu-img dd copies', async t => {
  const dir = t.testdir()
  const src = path.join(dir, 'src.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', src, '1M'])
  qemuIoOk(['write -P 7 0 300k', 'write -P 9 700k 50k'], src)
  const cases: string[][] = [
    [], ['bs=64k', 'count=3', 'skip=1'], ['bs=100k', 'count=5', 'skip=2'], ['bs=1000', 'count=3'],
    ['bs=64k', 'skip=16'], ['bs=64k', 'skip=15', 'count=15'], ['bs=300k', 'count=2', 'skip=3'],
    ['bs=1k', 'skip=1500'], ['count=1k', 'bs=1'], ['-O', 'qcow2', 'bs=64k'], ['-O', 'qcow2', 'bs=1M', 'skip=0'],
  ]
  let i = 0
  for (const c of cases) {
    const ext = c.includes('qcow2') ? 'qcow2' : 'raw'
    const a = path.join(dir, `a${i}.${ext}`)
    const b = path.join(dir, `b${i}.${ext}`)
    i++
    const ra = qimg(['dd', ...c, `if=${src}`, `of=${a}`])
    const rb = qemuImg(['dd', ...c, `if=${src}`, `of=${b}`])
    const name = c.join(' ') || 'defaults'
    t.equal(ra.stderr.replaceAll(a, 'OUT'), rb.stderr.replaceAll(b, 'OUT'), `stderr: ${name}`)
    t.equal(ra.code, rb.code, `exit: ${name}`)
    t.equal(fs.statSync(a).size, fs.statSync(b).size, `file size: ${name}`)
    t.equal(qemuImg(['compare', '-f', ext, '-F', ext, a, b]).code, 0, `content: ${name}`)
    if (ext === 'qcow2') t.equal(qemuImg(['check', a]).code, 0, `qemu-img check: ${name}`)
  }
})

t.test('dd refuses what qemu-img dd refuses', async t => {
  const dir = t.testdir()
  const src = path.join(dir, 'src.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', src, '1M'])
  const bad: string[][] = [
    ['if=src.qcow2'], ['of=x.raw'], ['if=src.qcow2', 'of=x.raw', 'bs=0'], ['if=src.qcow2', 'of=x.raw', 'bs=3G'],
    ['if=src.qcow2', 'of=x.raw', 'bs=1x'], ['if=src.qcow2', 'of=x.raw', 'count=x'], ['if=src.qcow2', 'of=x.raw', 'skip=-1'],
    ['if=src.qcow2', 'of=x.raw', 'foo=1'], ['if=src.qcow2', 'of=x.raw', 'if'], ['if=nonexist.qcow2', 'of=x.raw'],
    ['if=src.qcow2', 'of=/nonexistdir/x'], ['-O', 'foo', 'if=src.qcow2', 'of=x.raw'], ['-f', 'foo', 'if=src.qcow2', 'of=x.raw'],
    ['-z', 'if=src.qcow2', 'of=x.raw'],
  ]
  for (const c of bad) {
    const a = qimg(['dd', ...c], { cwd: dir })
    const b = qemuImg(['dd', ...c], { cwd: dir })
    t.equal(a.stderr, b.stderr, `stderr: ${c.join(' ')}`)
    t.equal(a.code, b.code, `exit: ${c.join(' ')}`)
  }
})
