import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qimg, qemuImg } from './helpers/run.js'

const DROP_TIME = (s: string) => s.replace(/Run completed in [0-9.]+ seconds\./, 'Run completed in X seconds.')

t.test('bench prints what qemu-img prints and refuses what it refuses', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'a.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', f, '1M'])
  const cases = [
    ['-c', '100'],
    ['-c', '20', '-d', '4', '-s', '8k', '-S', '16k', '-o', '4k'],
    ['-c', '3', '-s', '1000', '-S', '100'],
    ['-c', '2', '-d', '1', '-S', '0'],
    ['-w', '-c', '50', '--pattern=7', '--flush-interval=64'],
    ['-c', 'x'], ['-c', '-1'], ['-d', 'x'], ['-s', 'x'], ['-S', 'x'], ['-o', '-1'], ['-s', '3G'],
    ['--pattern=300', '-w'], ['-i', 'foo'], ['-t', 'foo'], ['--flush-interval=2', '-w', '-c', '4'],
    ['--flush-interval=80'], ['-n'], ['-w', '-U', '-c', '1'], ['-c', '1', '-s', '2M'],
  ]
  for (const c of cases) {
    const args = ['bench', ...c, f]
    const a = qimg(args)
    const b = qemuImg(args)
    t.equal(DROP_TIME(a.stdout), DROP_TIME(b.stdout), `stdout: ${c.join(' ')}`)
    t.equal(a.stderr, b.stderr, `stderr: ${c.join(' ')}`)
    t.equal(a.code, b.code, `exit: ${c.join(' ')}`)
  }
})

t.test('bench -w writes the pattern where qemu-img writes it', async t => {
  const dir = t.testdir()
  const a = path.join(dir, 'a.raw')
  const b = path.join(dir, 'b.raw')
  for (const f of [a, b]) qemuImgOk(['create', '-f', 'raw', f, '64k'])
  const args = ['-f', 'raw', '-w', '-c', '23', '-d', '1', '-s', '1', '-S', '3000', '--pattern=9']
  qimg(['bench', ...args, a])
  qemuImg(['bench', ...args, b])
  t.equal(qemuImg(['compare', '-f', 'raw', '-F', 'raw', a, b]).code, 0, 'same bytes written (wrapping at the end)')
})
