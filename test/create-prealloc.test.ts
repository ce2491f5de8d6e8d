// create -o preallocation=...: metadata and data laid out as qemu-img lays them out.
import t from 'tap'
import { createBoth, sameFile } from './helpers/create-compare.js'

const PREALLOC_MATRIX: Array<[string, string]> = [
  ['', '1M'], ['', '1'], ['', '2000000'], ['cluster_size=512', '1M'], ['cluster_size=4k,refcount_bits=64', '3M'],
  ['extended_l2=on', '1'], ['extended_l2=on', '2000000'], ['cluster_size=2M', '3M'], ['compat=0.10', '1M'],
]

t.test('preallocation lays out metadata and data like qemu-img', async t => {
  const root = t.testdir()
  for (const mode of ['metadata', 'falloc', 'full']) {
    for (const [o, size] of PREALLOC_MATRIX) {
      const args = ['-f', 'qcow2', '-o', `preallocation=${mode}${o ? ',' + o : ''}`, 'img.qcow2', size]
      const c = await createBoth(t, root, args)
      sameFile(t, c, 'img.qcow2', { check: [] })
    }
  }
  // larger ones: many L2 tables interleaved with data, refcount blocks and
  // refcount tables outgrown (and left behind) on the way
  for (const [o, size] of [['preallocation=metadata', '1G'], ['preallocation=metadata,cluster_size=512', '16M'],
    ['preallocation=metadata,cluster_size=1k,refcount_bits=64', '16M'], ['preallocation=falloc,cluster_size=512,refcount_bits=64', '8M'],
    ['preallocation=metadata,cluster_size=2k,refcount_bits=32', '64M']]) {
    const c = await createBoth(t, root, ['-f', 'qcow2', '-o', o, 'img.qcow2', size])
    sameFile(t, c, 'img.qcow2', { check: [] })
  }
})

