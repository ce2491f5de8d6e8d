// convert's refusals against the real qemu-img: the same message, in the
// same order of checks, and the same exit code for each wrong command line.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk, qemuImg } from './helpers/run.js'
import { sameAsQemuFast } from './helpers/fast.js'
import { findFormat } from '../src/block/registry.js'

t.test('wrong command lines get qemu-img\'s messages and exit codes', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('a.qcow2'), '4M'])
  qemuIoOk(['write -P 1 0 64k'], f('a.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'raw', f('r.raw'), '1M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'a.qcow2', '-F', 'qcow2', f('ch.qcow2')])
  fs.copyFileSync(f('a.qcow2'), f('bm.qcow2'))
  qemuImgOk(['bitmap', '--add', f('bm.qcow2'), 'b0'])
  const lines = [
    [], ['a.qcow2'], ['-O', 'nosuch', 'a.qcow2', 'o'], ['-f', 'nosuch', 'a.qcow2', 'o'], ['-O', 'raw', '-c', 'a.qcow2', 'o'],
    ['-O', 'raw', '-o', 'help', 'a.qcow2', 'o'], ['-O', 'raw', '-o', 'help'], ['-o', '?', 'x'], ['-O', 'raw', '-o', 'foo=bar', 'a.qcow2', 'o'],
    ['-S', '100', 'a.qcow2', 'o'], ['-S', '-1', 'a.qcow2', 'o'], ['-S', 'abc', 'a.qcow2', 'o'], ['-S', '16385k', 'a.qcow2', 'o'],
    ['-m', '0', 'a.qcow2', 'o'], ['-m', '17', 'a.qcow2', 'o'], ['-m', '08', 'a.qcow2', 'o'], ['-r', 'abc', 'a.qcow2', 'o'], ['-r', '-1', 'a.qcow2', 'o'],
    ['-t', 'foo', 'a.qcow2', 'o'], ['-T', 'foo', 'a.qcow2', 'o'], ['-t', 'Unsafe', 'a.qcow2', 'o'],
    ['-o', 'preallocation=foo', 'a.qcow2', 'o'], ['-o', 'preallocation=metadata', 'a.qcow2', 'o'], ['-o', 'size=abc', 'a.qcow2', 'o'],
    ['-o', 'size=18E', 'a.qcow2', 'o'], ['-o', 'nocow=foo', 'a.qcow2', 'o'], ['-o', 'nocow', 'a.qcow2', 'o'], ['-o', 'preallocation', 'a.qcow2', 'o'],
    ['-o', '', 'a.qcow2', 'o'], ['-o', 'size=1M,', 'a.qcow2', 'o'], ['-o', 'backing_file=x', 'a.qcow2', 'o'],
    ['-n', 'a.qcow2', 'nonexist'], ['-n', 'a.qcow2', 'r.raw'], ['-n', '-o', 'size=1M', 'a.qcow2', 'r.raw'], ['--target-is-zero', 'a.qcow2', 'r.raw'],
    ['-B', 'a.qcow2', 'a.qcow2', 'o'], ['-F', 'qcow2', 'a.qcow2', 'o'], ['-F', 'x', '-B', 'y', 'a.qcow2', 'o'], ['-s', 'foo', 'a.qcow2', 'o'],
    ['--bitmaps', 'a.qcow2', 'o'], ['--bitmaps', 'r.raw', 'o'], ['--skip-broken-bitmaps', 'a.qcow2', 'o'],
    ['--bitmaps', '-t', 'foo', 'a.qcow2', 'r.raw', 'o'], ['-n', '--bitmaps', 'a.qcow2', 'r.raw'], ['--bitmaps', 'bm.qcow2', 'o'],
    ['-C', '-c', 'a.qcow2', 'o'], ['-C', '-S', '4k', 'a.qcow2', 'o'], ['--salvage', '-C', 'a.qcow2', 'o'],
    ['--target-image-opts', 'a.qcow2', 'o'], ['-O', 'raw', '-n', '--target-image-opts', 'a.qcow2', 'driver=raw,file.filename=r.raw'],
    ['--image-opts', '-f', 'qcow2', 'driver=qcow2,file.filename=a.qcow2', 'o'], ['--image-opts', 'a.qcow2', 'o'],
    ['a.qcow2', 'a.qcow2'], ['ch.qcow2', 'a.qcow2'], ['-n', 'ch.qcow2', 'a.qcow2'], ['a.qcow2', '/nonexist/dir/x'], ['nonexist.qcow2', 'o'],
    ['-n', '-c', 'a.qcow2', 'r.raw'], ['-O', 'nosuch', '-n', 'a.qcow2', 'r.raw'], ['-t', 'foo', '-n', 'a.qcow2', 'nonexist'],
    ['--object', 'secret,id=s', 'a', 'b'], ['--object', 'foo,id=x', '-C', '-c', 'a', 'b'], ['-T', 'foo', '-o', 'help', 'a', 'b'],
    ['-n', '--target-is-zero', '-B', 'a.qcow2', '-p', 'a.qcow2', 'nonexist'], ['-n', '--target-is-zero', '-B', 'a.qcow2', '-T', 'foo', 'a.qcow2', 'r.raw'],
    ['-O', 'qcow2', '-B', 'x', 'a.qcow2', 'o'], ['-O', 'qcow2', '-F', 'qcow2', 'a.qcow2', 'o'], ['-O', 'qcow2', '-B', 'x', '-F', 'qcow2', 'a.qcow2', 'o'],
    ['-O', 'qcow2', '-o', 'backing_file=a.qcow2', 'a.qcow2', 'o'], ['-O', 'qcow2', '-o', 'cluster_size=0x1k', 'a.qcow2', 'o'],
    ['-O', 'qcow2', '-o', 'cluster_size=0x1k,foo=1', 'a.qcow2', 'o'], ['-O', 'qcow2', '-c', '-o', 'preallocation=metadata', 'a.qcow2', 'o'],
    ['-O', 'qcow2', '-o', 'preallocation=metadata', '-B', 'a.qcow2', '-F', 'qcow2', 'a.qcow2', 'o'], ['-O', 'qcow2', '-o', 'encrypt.format=luks', 'a.qcow2', 'o'],
    ['-l', 'x', 'a.qcow2', 'nonexist', 'o'], ['-p', 'nonexist', 'o'], ['-p', '-T', 'foo', 'a', 'b'], ['--tar', 'a', 'b'], ['-f'],
  ]
  // qcow2 targets once the qcow2 driver can create images
  if ((await findFormat('qcow2')!.load()).create) lines.push(['-O', 'qcow2', '--bitmaps', 'r.raw', 'o'], ['-O', 'qcow2', '--bitmaps', 'a.qcow2', 'r.raw', 'o'])
  for (const args of lines) {
    await sameAsQemuFast(t, ['convert', ...args], dir)
    fs.rmSync(f('o'), { force: true })
  }
  t.ok(fs.existsSync(f('a.qcow2')) && qemuImg(['check', f('a.qcow2')]).code === 0, 'the source survived attempts to overwrite it')
})
