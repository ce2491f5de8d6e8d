// create: every refusal with qemu-img's message and exit code, and -o help.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk } from './helpers/run.js'
import { qimgFast, sameAsQemuFast } from './helpers/fast.js'
import { qemuImg } from './helpers/run.js'

/** Like sameAsQemu, and both tools leave the same files behind (each run starts from the same directory contents). */
async function sameAsQemuFiles (t: Test, args: string[], dir: string): Promise<void> {
  const before = new Set(fs.readdirSync(dir))
  const leftovers = (): string[] => {
    const extra = fs.readdirSync(dir).filter(f => !before.has(f)).sort()
    for (const f of extra) fs.rmSync(path.join(dir, f), { recursive: true, force: true })
    return extra
  }
  const a = await qimgFast(args, dir)
  const ours = leftovers()
  const b = qemuImg(args, { cwd: dir })
  const theirs = leftovers()
  const name = args.join(' ')
  t.equal(a.stdout, b.stdout, `stdout: ${name}`)
  t.equal(a.stderr, b.stderr, `stderr: ${name}`)
  t.equal(a.code, b.code, `exit code: ${name}`)
  t.same(ours, theirs, `files left: ${name}`)
}

const BAD_OPTIONS = [
  'cluster_size=1000', 'cluster_size=256', 'cluster_size=4M', 'cluster_size=0', 'cluster_size=1x', 'cluster_size=64k,,x',
  'compat=0.10,refcount_bits=8', 'compat=0.10,lazy_refcounts=on', 'compat=0.10,extended_l2=on',
  'compat=0.10,compression_type=zstd', 'compat=0.10,data_file=x', 'compat=1.2', 'compat=v4',
  'refcount_bits=3', 'refcount_bits=128', 'refcount_bits=0', 'refcount_bits=8k', 'refcount_bits=-8',
  'refcount_bits=99999999999999999999', 'refcount_bits=16.0',
  'data_file_raw=on', 'extended_l2=on,cluster_size=8k', 'compression_type=lz4', 'preallocation=foo',
  'lazy_refcounts=1', 'lazy_refcounts=ON', 'backing_fmt=qcow2', 'foo=bar', '=1', 'a=',
  'encryption=on', 'encrypt.format=aes', 'encrypt.format=foo', 'encrypt.key-secret=s0',
  'encrypt.iter-time=abc', 'encryption=on,encrypt.format=aes', 'encrypt.format=aes,encrypt.key-secret=s0,encrypt.cipher-alg=aes-128',
  'encryption=on,encrypt.key-secret=nope', 'preallocation=metadata,backing_file=base.qcow2,backing_fmt=qcow2',
  'data_file_raw=on,data_file=d.raw,backing_file=base.qcow2,backing_fmt=qcow2',
  // several problems at once: the first one qemu checks is reported
  'cluster_size=1000,compat=0.10,lazy_refcounts=on', 'compat=0.10,lazy_refcounts=on,refcount_bits=8',
  'compat=0.10,refcount_bits=8,extended_l2=on', 'compat=0.10,data_file=x,compression_type=zstd',
  'data_file_raw=on,backing_fmt=qcow2', 'refcount_bits=3,data_file_raw=on', 'preallocation=foo,compat=1.2',
  'compression_type=lz4,encrypt.format=x', 'encryption=on,encrypt.format=aes,preallocation=foo',
  'cluster_size=8k,extended_l2=on,compat=0.10', 'backing_fmt=raw,encryption=on', 'encryption=on,data_file_raw=on',
  'size=1M', 'extent_size_hint=5000000000',
  'encrypt.format=luks', 'encrypt.format=luks,encrypt.key-secret=nope', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-alg=foo',
  'encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-mode=foo', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=x',
]

t.test('bad -o values and combinations are refused like qemu-img', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'base.qcow2'), '1M'])
  for (const o of BAD_OPTIONS) {
    await sameAsQemuFiles(t, ['create', '-f', 'qcow2', '--object', 'secret,id=s0,data=x', '-o', o, 'a.qcow2', '1M'], dir)
  }
})

t.test('command line errors', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'base.qcow2'), '2M'])
  qemuImgOk(['create', '-q', '-f', 'raw', path.join(dir, 'base.raw'), '3M'])
  const cases: string[][] = [
    [], ['-f', 'qcow2'], ['a.qcow2'], ['a.qcow2', '1M', 'extra'], ['-e', 'a.qcow2', '1M'], ['-z'],
    ['-f', 'qcow2', 'a.qcow2', '1x'], ['-f', 'qcow2', 'a.qcow2', '8E'], ['-f', 'qcow2', 'a.qcow2', '20E'],
    ['-f', 'qcow2', 'a.qcow2', '1.5'], ['-f', 'qcow2', 'a.qcow2', ''], ['-f', 'qcow2', 'a.qcow2', '1k '],
    ['-f', 'qcow2', 'a.qcow2', '64P'], ['-f', 'qcow2', 'a.qcow2', '9223372036854775807'],
    ['-f', 'foo', 'x', '1M'], ['-f', 'foo', 'x', '1x'], ['-f', 'qcow2', '-o', ',', 'x', '1M'],
    ['-f', 'qcow2', '-o', 'size=1M,', 'x'], ['-f', 'qcow2', '-o', '', 'x', '1M'], ['-f', 'qcow2', '-o', 'size=1M', '-o', '', 'x'],
    ['-f', 'raw', '-o', 'foo=bar', '-b', 'y', 'x', '1M'], ['-f', 'raw', '-b', 'y', '-o', 'size=1M', 'x'],
    ['-f', 'raw', '-o', 'preallocation=metadata', 'r.raw', '1M'], ['-f', 'raw', '-o', 'preallocation=foo', 'r.raw', '1M'],
    ['-f', 'qcow2', '-b', 'x', 'x', '1M'], ['-f', 'qcow2', '-o', 'size=1x', '-b', 'x', 'x'],
    ['-f', 'qcow2', '-b', 'base.qcow2', 'a.qcow2'], ['-f', 'qcow2', '-b', 'base.qcow2', 'a.qcow2', '1M'],
    ['-f', 'qcow2', '-b', 'base.raw', '-F', 'qcow2', 'a.qcow2'], ['-f', 'qcow2', '-b', 'nonexist', '-F', 'qcow2', 'a.qcow2'],
    ['-f', 'qcow2', '-b', 'nonexist', '-F', 'qcow2', '-u', 'a.qcow2'], ['-f', 'qcow2', '-b', 'nonexist', '-u', 'a.qcow2', '1M'],
    ['-f', 'qcow2', '-b', 'base.qcow2', '-F', 'foo', 'a.qcow2'], ['-f', 'qcow2', '-F', 'qcow2', 'a.qcow2', '1M'],
    ['-f', 'qcow2', '-o', 'backing_file=nonexist,size=1M', 'a.qcow2'], ['-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'sub/a.qcow2'],
    ['-f', 'qcow2', 'nodir/a.qcow2', '1M'], ['-f', 'raw', 'nodir/r.raw', '1M'], ['-f', 'qcow2', '-o', 'data_file=nodir/x', 'a.qcow2', '1M'],
    ['-f', 'qcow2', '--object', 'secret,id=s0', 'a.qcow2', '1M'],
    ['-f', 'qcow2', '-b', '', 'a.qcow2', '1M'], ['-f', 'qcow2', '-o', 'backing_file=', '-u', '-F', 'qcow2', 'a.qcow2', '1M'],
  ]
  for (const args of cases) {
    await sameAsQemuFiles(t, ['create', ...args], dir)
  }
})

t.test('-o help lists the options as qemu-img does', async t => {
  const dir = t.testdir()
  for (const args of [
    ['-f', 'qcow2', '-o', 'help'], ['-f', 'raw', '-o', 'help'], ['-o', 'help'], ['-f', 'qcow2', '-o', '?'],
    ['-f', 'qcow2', '-o', 'help', 'x'], ['-f', 'raw', '-o', 'help', 'x'], ['-f', 'qcow2', '-o', 'help,size=1M', 'x'],
    ['-f', 'qcow2', '-o', 'size=1M,help', 'x', '1M'], ['-f', 'qcow2', '-o', 'help', '-o', 'size=1x', 'x', '1x'],
    ['-f', 'qcow2', '-o', 'foo=bar,help', 'x'], ['-f', 'foo', '-o', 'help'],
  ]) {
    await sameAsQemuFast(t, ['create', ...args], dir)
  }
  t.notOk(fs.existsSync(path.join(dir, 'x')))
})

t.test('size arguments follow qemu_strtosz', async t => {
  const dir = t.testdir()
  const sizes = ['0x1k', '0X1K', '0x1.8k', '0x', '1.5k', '0.1k', '0.5', '1.k', '.5k', '1b', '1B', '1kb', '1K', '1m', '1g', '1t', '1p', '1e',
    '00012', '012k', '1.0', '1.0k', '1e2k', '0.0000000001k', '1.9999999999999999999999k', '1k5', '+1k', ' +1k', '1 k',
    '18446744073709551615', '18446744073709551616', '9223372036854775807', '9223372036854775808', '7.99999999999999999E',
    '7.9999E', '0.9999999999999999E', '1e1', 'inf', 'nan', '0x8000000000000000', '0x7fffffffffffffff', '0.99999999999999999k',
    '1.5b', '0.3k', '0.7k', '0.9999k', '2.5e', '1.9999999999999999k']
  // measure --size parses like create's size argument and needs no file
  for (const s of sizes) await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '-o', 'cluster_size=2M', '--size', s], dir)
  for (const s of ['0x1k', '1.5k', '20E', '8E', '-1', '1.5', '']) await sameAsQemuFiles(t, ['create', '-f', 'raw', '-o', `size=${s}`, 'sz.raw'], dir)
})
