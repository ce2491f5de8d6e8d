// compare against the real qemu-img: verdicts, messages, progress lines and
// exit codes for identical, different, differently sized and strict cases,
// and for errors.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { sameAsQemuFast } from './helpers/fast.js'
import { breakFirstCompressedCluster, misalignFirstL2 } from './helpers/convert.js'

function poke (file: string, offset: number, text: string): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.from(text), 0, text.length, offset)
  fs.closeSync(fd)
}

t.test('verdicts and messages', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  const both = async (args: string[]) => {
    for (const flags of [[], ['-s'], ['-p']]) await sameAsQemuFast(t, ['compare', ...flags, ...args], dir)
  }
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('a.qcow2'), '4M'])
  qemuIoOk(['write -P 1 0 64k', 'write -z 1M 64k', 'write -P 0 2M 64k', 'write -c -P 2 3M 64k'], f('a.qcow2'))
  qemuImgOk(['convert', '-O', 'raw', f('a.qcow2'), f('a.raw')])
  qemuImgOk(['convert', '-O', 'qcow2', f('a.qcow2'), f('a2.qcow2')])
  qemuImgOk(['convert', '-c', '-O', 'qcow2', f('a.qcow2'), f('ac.qcow2')])
  await both(['a.qcow2', 'a.raw'])
  await sameAsQemuFast(t, ['compare', '-q', 'a.raw', 'a.qcow2'], dir)
  await sameAsQemuFast(t, ['compare', '-q', '-s', 'a.raw', 'a.qcow2'], dir)
  await both(['a.qcow2', 'a2.qcow2'])
  await both(['a.qcow2', 'ac.qcow2'])
  await both(['-f', 'qcow2', '-F', 'raw', 'a.qcow2', 'a.raw'])
  // a raw copy with all zeros written out, then bigger, then changed
  qemuImgOk(['convert', '-S', '0', '-O', 'raw', f('a.qcow2'), f('full.raw')])
  await both(['a.qcow2', 'full.raw'])
  fs.copyFileSync(f('full.raw'), f('big.raw'))
  fs.truncateSync(f('big.raw'), 5 << 20)
  await both(['big.raw', 'a.qcow2'])
  poke(f('big.raw'), 4500000, 'x')
  await both(['a.qcow2', 'big.raw'])
  poke(f('full.raw'), 70000, 'y')
  await both(['a.qcow2', 'full.raw'])
  poke(f('a.raw'), 3 * 1048576 + 5000, 'z')
  await both(['a.qcow2', 'a.raw'])
  // different extents with the same content; the end-of-file flag in strict mode
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('e1.qcow2'), '8M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('e2.qcow2'), '8M'])
  qemuIoOk(['write -P 1 0 64k', 'write -P 1 64k 64k'], f('e1.qcow2'))
  qemuIoOk(['write -P 1 64k 64k', 'write -P 1 0 64k', 'write -z 4M 64k'], f('e2.qcow2'))
  await both(['e1.qcow2', 'e2.qcow2'])
  // past the end of a shorter backing file zeros count as allocated
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('base.qcow2'), '1M'])
  qemuIoOk(['write -P 1 0 1M'], f('base.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', f('x.qcow2'), '2M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', f('y.qcow2'), '2M'])
  qemuIoOk(['write -z 1M 1M'], f('y.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('z.qcow2'), '2M'])
  qemuIoOk(['write -P 1 0 1M'], f('z.qcow2'))
  await both(['x.qcow2', 'y.qcow2'])
  await both(['x.qcow2', 'z.qcow2'])
  // bigger unallocated and data areas (chunking shows in the progress lines)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('p.qcow2'), '1M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('q.qcow2'), '10M'])
  qemuIoOk(['write -P 0 1M 9M'], f('q.qcow2'))
  await both(['p.qcow2', 'q.qcow2'])
  fs.writeFileSync(f('r.raw'), '')
  fs.truncateSync(f('r.raw'), 10 << 20)
  await both(['q.qcow2', 'r.raw'])
})

t.test('errors and exit codes', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('a.qcow2'), '1M'])
  qemuIoOk(['write -P 1 0 64k'], f('a.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'raw', f('r.raw'), '1M'])
  // an L2 table at an unaligned offset: block status fails (exit 3)
  fs.copyFileSync(f('a.qcow2'), f('bad.qcow2'))
  misalignFirstL2(f('bad.qcow2'))
  // a compressed cluster that does not inflate: reading fails (exit 4)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('cc.qcow2'), '1M'])
  qemuIoOk(['write -c -P 1 0 64k'], f('cc.qcow2'))
  breakFirstCompressedCluster(f('cc.qcow2'))
  const lines = [
    [], ['a.qcow2'], ['a', 'b', 'c'], ['a.qcow2', 'nonexist'], ['-f', 'raw', '-F', 'qcow2', 'a.qcow2', 'r.raw'],
    ['-T', 'foo', 'a.qcow2', 'r.raw'], ['-U', '-T', 'none', 'a.qcow2', 'r.raw'], ['--image-opts', 'driver=qcow2,file.filename=a.qcow2', 'r.raw'],
    ['--image-opts', 'driver=qcow2,file.filename=a.qcow2', 'driver=raw,file.filename=r.raw'],
    ['--image-opts', '-f', 'raw', 'driver=qcow2,file.filename=a.qcow2', 'r.raw'], ['-f', 'foo', 'a.qcow2', 'r.raw'],
    ['-F', 'foo', 'a.qcow2', 'r.raw'], ['--object', 'foo', 'a.qcow2', 'r.raw'], ['-p', 'a'], ['-p', '-f', 'foo', 'a', 'b'],
    ['-p', '-T', 'foo', 'a.qcow2', 'r.raw'], ['--strict', 'a', 'b'], ['-x', 'a', 'b'],
    ['bad.qcow2', 'r.raw'], ['r.raw', 'bad.qcow2'], ['-p', 'bad.qcow2', 'r.raw'], ['cc.qcow2', 'r.raw'], ['-p', 'r.raw', 'cc.qcow2'],
  ]
  for (const args of lines) await sameAsQemuFast(t, ['compare', ...args], dir)
})
