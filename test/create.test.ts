// create: images identical to qemu-img's (bytes, holes, size, output) for a
// matrix of options, and accepted by qemu-img check.
import t from 'tap'
import { createBoth, sameFile } from './helpers/create-compare.js'

const QCOW2_MATRIX: Array<[string, string]> = [
  ['', '1M'], ['', '0'], ['', '1'], ['', '2000000'], ['', '1G'], ['', '1T'], ['', '2P'],
  ['compat=0.10', '1G'], ['compat=v2', '1M'], ['compat=1.1', '1M'],
  ['cluster_size=512', '1M'], ['cluster_size=512', '1G'], ['cluster_size=512', '64G'], ['cluster_size=512', '128G'],
  ['cluster_size=4k', '1G'], ['cluster_size=2M', '1T'], ['cluster_size=1k,refcount_bits=2', '1G'],
  ['refcount_bits=1', '1G'], ['refcount_bits=8', '1M'], ['refcount_bits=64', '1T'],
  ['extended_l2=on', '1G'], ['extended_l2=on,cluster_size=16k', '1M'],
  ['lazy_refcounts=on', '1M'], ['compression_type=zstd', '1M'],
  ['nocow=on,extent_size_hint=0', '1M'],
]

t.test('qcow2 images are byte-identical to qemu-img\'s', async t => {
  const root = t.testdir()
  for (const [o, size] of QCOW2_MATRIX) {
    const args = ['-f', 'qcow2', ...(o ? ['-o', o] : []), 'img.qcow2', size]
    const c = await createBoth(t, root, args)
    sameFile(t, c, 'img.qcow2', { check: [] })
  }
})

t.test('raw images', async t => {
  const root = t.testdir()
  for (const args of [['1M'], ['1000'], ['0'], ['-o', 'preallocation=falloc', '10000'], ['-o', 'preallocation=full', '1000'], ['-o', 'preallocation=off', '1M'], ['-o', 'nocow=on', '1M']]) {
    const size = args[args.length - 1]
    const c = await createBoth(t, root, ['-f', 'raw', ...args.slice(0, -1), 'img.raw', size])
    sameFile(t, c, 'img.raw')
  }
  // raw is the default format
  const c = await createBoth(t, root, ['img.raw', '64k'])
  sameFile(t, c, 'img.raw')
})

t.test('-q prints nothing', async t => {
  const root = t.testdir()
  const c = await createBoth(t, root, ['-q', '-f', 'qcow2', 'img.qcow2', '1M'])
  t.equal(c.ours.stdout, '')
  sameFile(t, c, 'img.qcow2')
})
