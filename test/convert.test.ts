// convert against the real qemu-img: the same bytes and the same holes in the
// target for every kind of qcow2 source.
import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { convertBoth, sectors, writeRaw } from './helpers/convert.js'

t.test('qcow2 sources of every kind convert to the same raw bytes and holes', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  // a chain of different sizes: base 4M < mid 6M < top 8M
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('base.qcow2'), '4M'])
  qemuIoOk(['write -P 1 0 1M', 'write -P 0 1M 64k', 'write -P 2 3M 512k'], f('base.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', f('mid.qcow2'), '6M'])
  qemuIoOk(['write -P 3 512k 64k', 'write -z 3M 128k', 'write -P 4 5M 4k'], f('mid.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', f('top.qcow2'), '8M'])
  qemuIoOk(['write -P 5 100k 8k', 'discard 0 64k', 'write -P 6 7M 1M'], f('top.qcow2'))
  for (const S of ['4k', '0', '512', '64k', '12k']) {
    await convertBoth(t, dir, ['-O', 'raw', '-S', S, 'top.qcow2'])
  }
  // compressed clusters, zlib and zstd, partly zero inside
  for (const ctype of ['zlib', 'zstd']) {
    const src = `comp-${ctype}.qcow2`
    writeRaw(f('plain.raw'), 3 << 20, [[0, sectors('DDDDZZZZZZZZZZZZDD'.repeat(40))], [1 << 20, Buffer.alloc(300 << 10, 7)]])
    qemuImgOk(['convert', '-q', '-c', '-O', 'qcow2', '-o', `compression_type=${ctype}`, f('plain.raw'), f(src)])
    await convertBoth(t, dir, ['-O', 'raw', src])
    await convertBoth(t, dir, ['-O', 'raw', '-S', '8k', src])
  }
  // extended L2 (subclusters), small and huge clusters, preallocated metadata
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=64k', f('sub.qcow2'), '3M'])
  qemuIoOk(['write -P 1 2k 2k', 'write -P 0 8k 4k', 'write -z 64k 32k', 'write -P 2 70k 1k', 'write -P 3 1M 100k'], f('sub.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'sub.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '-S', '1k', 'sub.qcow2'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', f('c512.qcow2'), '1M'])
  qemuIoOk(['write -P 1 0 3k', 'write -P 9 100k 1536', 'write -P 0 200k 8k'], f('c512.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'c512.qcow2'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', f('c2m.qcow2'), '5M'])
  qemuIoOk(['write -P 1 4k 4k', 'write -P 2 3M 1M'], f('c2m.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'c2m.qcow2'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', f('meta.qcow2'), '2M'])
  qemuIoOk(['write -P 1 64k 64k'], f('meta.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'meta.qcow2'])
  // options that change scheduling but not the result
  await convertBoth(t, dir, ['-O', 'raw', '-m', '1', 'top.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '-m', '16', '-W', 'top.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '-r', '1G', '-t', 'writeback', '-T', 'none', '-U', 'top.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '-C', 'top.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '-C', 'comp-zlib.qcow2'])
  await convertBoth(t, dir, ['--image-opts', 'driver=qcow2,file.filename=top.qcow2'])
})
