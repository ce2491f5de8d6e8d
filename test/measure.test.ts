// measure: the same numbers, output and errors as qemu-img.
import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { sameAsQemuFast } from './helpers/fast.js'

const OPTIONS = [
  '', 'cluster_size=512', 'cluster_size=4k', 'cluster_size=2M', 'refcount_bits=1', 'refcount_bits=8', 'refcount_bits=64',
  'refcount_bits=64,cluster_size=512', 'extended_l2=on', 'extended_l2=on,cluster_size=16k', 'preallocation=metadata',
  'preallocation=falloc', 'preallocation=full', 'preallocation=full,cluster_size=4k', 'compat=0.10', 'lazy_refcounts=on',
  'nocow=on', 'data_file=x', 'encryption=on', 'compression_type=foo', 'compat=0.10,lazy_refcounts=on',
]

t.test('--size: qcow2 and raw numbers equal qemu-img\'s', async t => {
  const dir = t.testdir()
  for (const size of ['0', '1', '1M', '1G', '1T', '100M', '2000000']) {
    for (const o of OPTIONS) {
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...(o ? ['-o', o] : []), '--size', size], dir)
    }
    await sameAsQemuFast(t, ['measure', '--size', size], dir)
    await sameAsQemuFast(t, ['measure', '-O', 'raw', '-o', 'preallocation=full', '--size', size, '--output=json'], dir)
    await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '--size', size, '--output=json'], dir)
  }
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '-o', 'cluster_size=512', '--size', '1T'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '--size', '64P'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '-o', 'cluster_size=2M', '--size', '1E'], dir)
})

t.test('from an image: allocation, zeros, compression, backing chains, snapshots, bitmaps', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('s.qcow2'), '10M'])
  qemuIoOk(['write 0 100k', 'write -z 1M 1M', 'write -c 4M 64k', 'write 6M 1k'], f('s.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 's.qcow2', '-F', 'qcow2', f('top.qcow2'), '12M'])
  qemuIoOk(['write 8M 300k', 'write -z 0 64k'], f('top.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'raw', f('sp.raw'), '10M'])
  qemuIoOk(['write 0 100k', 'write 5M 1k'], f('sp.raw'), ['-f', 'raw'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('snap.qcow2'), '4M'])
  qemuIoOk(['write 0 1M'], f('snap.qcow2'))
  qemuImgOk(['snapshot', '-c', 'first', f('snap.qcow2')])
  qemuIoOk(['write 2M 2M'], f('snap.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('bm.qcow2'), '10M'])
  qemuImgOk(['bitmap', '--add', f('bm.qcow2'), 'b0'])
  qemuImgOk(['bitmap', '--add', '-g', '4k', f('bm.qcow2'), 'a-longer-bitmap-name'])
  for (const o of ['', 'cluster_size=4k', 'cluster_size=512', 'cluster_size=2M', 'preallocation=full', 'extended_l2=on']) {
    const opt = o ? ['-o', o] : []
    for (const out of ['human', 'json']) {
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, 's.qcow2'], dir)
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, 'top.qcow2'], dir)
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, '-f', 'raw', 'sp.raw'], dir)
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, 'bm.qcow2'], dir)
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, 'snap.qcow2'], dir)
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...opt, `--output=${out}`, '-l', 'first', 'snap.qcow2'], dir)
    }
  }
  await sameAsQemuFast(t, ['measure', '-O', 'raw', 's.qcow2'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'raw', '--output=json', 'top.qcow2'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '-l', 'snapshot.name=first', 'snap.qcow2'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '--image-opts', 'driver=qcow2,file.filename=s.qcow2'], dir)
  await sameAsQemuFast(t, ['measure', '-O', 'qcow2', '-f', 'raw', 's.qcow2'], dir)
})

t.test('from images whose runs cross L2 tables (qimg asks for status across them)', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  // 512-byte clusters: an L2 table covers 32 KiB; with subclusters, 16 KiB clusters cover 16 MiB
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', f('small.qcow2'), '4M'])
  qemuIoOk(['write 0 100k', 'write 31k 3k', 'write -z 200k 70k', 'write -c 300k 40k', 'write 1000k 1k', 'write 2047k 66k'], f('small.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=16k,extended_l2=on', f('sub.qcow2'), '64M'])
  qemuIoOk(['write 15M 2M', 'write 16385k 1k', 'write -z 17M 3k', 'write 32767k 2k', 'write 48M 1k'], f('sub.qcow2'))
  for (const src of ['small.qcow2', 'sub.qcow2']) {
    for (const o of ['', 'cluster_size=512', 'cluster_size=4k', 'cluster_size=2M']) {
      await sameAsQemuFast(t, ['measure', '-O', 'qcow2', ...(o ? ['-o', o] : []), '--output=json', src], dir)
    }
  }
})

t.test('measure refuses what qemu-img refuses', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 's.qcow2'), '10M'])
  for (const args of [
    [], ['-O', 'qcow2'], ['--size', '1G', 's.qcow2'], ['s.qcow2', 's.qcow2'], ['--size', '1x'], ['--size', '9E'],
    ['--output=xml', '--size', '1G'], ['--output=xml', 's.qcow2', 's.qcow2'], ['-O', 'foo', '--size', '1G'],
    ['-O', 'qcow2', '-o', 'foo=bar', '--size', '1G'], ['-O', 'qcow2', '-o', 'lazy_refcounts=1', '--size', '1G'],
    ['-O', 'qcow2', '-o', ',', '--size', '1'], ['-O', 'qcow2', '-o', 'cluster_size=1000', '--size', '1G'],
    ['-O', 'qcow2', '-o', 'cluster_size=1000', 'nonexist'], ['-O', 'qcow2', '-o', 'refcount_bits=3', '--size', '1'],
    ['-O', 'qcow2', '-o', 'preallocation=foo', '--size', '1G'], ['-O', 'qcow2', '-o', 'extended_l2=on,cluster_size=4k', '--size', '1'],
    ['-O', 'qcow2', '-l', 'foo', '--size', '1'], ['-O', 'qcow2', '-f', 'raw', '--size', '1'], ['-O', 'qcow2', '-l', 'foo', 's.qcow2'],
    ['-f', 'raw', 'nonexist'], ['-O', 'qcow2', '-o', 'help', '--size', '1M'], ['-o', 'help'],
    ['-O', 'qcow2', '-o', 'encrypt.format=luks', '--size', '1G'], ['-O', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s9', '--size', '1G'],
    ['-O', 'qcow2', '--size', '0x1k'], ['-O', 'raw', '-o', 'preallocation=foo', '--size', '1M'],
  ]) {
    await sameAsQemuFast(t, ['measure', ...args], dir)
  }
})
