// `check` on images the real tools made: output (human and JSON) and exit
// codes must equal qemu-img's, for every kind of qcow2 it writes; plus the
// command line's error cases.
import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk, qemuIo } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'

t.test('clean images from qemu-img give the same report', async t => {
  const dir = t.testdir()
  const f = (n: string): string => path.join(dir, n)
  const make = (name: string, opts: string, size: string, io: string[]): void => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', ...(opts ? ['-o', opts] : []), f(name), size])
    if (io.length) qemuIoOk(io, f(name))
  }
  const data = ['write -P 1 0 300k', 'write -P 2 1M 64k', 'discard 64k 64k', 'write -z 2M 128k']
  make('c512.qcow2', 'cluster_size=512', '4M', data)
  make('c64k.qcow2', '', '64M', data)
  make('c2m.qcow2', 'cluster_size=2M', '64M', ['write -P 1 0 3M', 'write -P 2 9M 64k'])
  for (const bits of [1, 2, 8, 32, 64]) make(`rb${bits}.qcow2`, `refcount_bits=${bits}`, '16M', ['write -P 1 0 256k'])
  make('compressed.qcow2', '', '16M', ['write -c -P 3 0 64k', 'write -c -P 4 64k 64k', 'write -P 5 128k 64k'])
  make('zstd.qcow2', 'compression_type=zstd', '16M', ['write -c -P 3 0 64k', 'write -P 5 128k 64k'])
  make('extl2.qcow2', 'extended_l2=on', '16M', ['write -P 1 0 4k', 'write -P 2 64k 64k', 'write -z 128k 4k', 'write -c -P 3 192k 64k'])
  make('v2.qcow2', 'compat=0.10', '16M', data)
  for (const p of ['metadata', 'falloc', 'full']) make(`prealloc-${p}.qcow2`, `preallocation=${p}`, '8M', [])
  make('empty.qcow2', '', '1G', [])
  make('lazy.qcow2', 'lazy_refcounts=on', '16M', ['write -P 1 0 128k'])

  make('snap.qcow2', '', '16M', ['write -P 1 0 256k'])
  qemuImgOk(['snapshot', '-c', 'one', f('snap.qcow2')])
  qemuIoOk(['write -P 2 64k 64k', 'write -c -P 3 1M 64k'], f('snap.qcow2'))
  qemuImgOk(['snapshot', '-c', 'two', f('snap.qcow2')])
  qemuIoOk(['write -P 4 0 64k'], f('snap.qcow2'))

  make('bitmaps.qcow2', '', '64M', [])
  qemuImgOk(['bitmap', '--add', f('bitmaps.qcow2'), 'b0'])
  qemuImgOk(['bitmap', '--add', '-g', '512', f('bitmaps.qcow2'), 'b1'])
  qemuIoOk(['write -P 1 0 192k', 'write -P 1 32M 64k'], f('bitmaps.qcow2'))

  // qemu opens an external data file relative to its working directory, not to the image
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'data_file=ext.raw', 'datafile.qcow2', '16M'], { cwd: dir })
  qemuIoOk(['write -P 1 0 192k', 'write -P 1 1M 64k'], 'datafile.qcow2', [], { cwd: dir })

  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'c64k.qcow2', '-F', 'qcow2', f('overlay.qcow2')])
  qemuIoOk(['write -P 9 0 64k'], f('overlay.qcow2'))

  const names = ['c512', 'c64k', 'c2m', 'rb1', 'rb2', 'rb8', 'rb32', 'rb64', 'compressed', 'zstd', 'extl2', 'v2',
    'prealloc-metadata', 'prealloc-falloc', 'prealloc-full', 'empty', 'lazy', 'snap', 'bitmaps', 'datafile', 'overlay']
  for (const n of names) sameAsQemu(t, ['check', `${n}.qcow2`], { cwd: dir })
  for (const n of ['c512', 'compressed', 'snap', 'bitmaps', 'datafile', 'empty']) {
    sameAsQemu(t, ['check', '--output=json', `${n}.qcow2`], { cwd: dir })
  }
  sameAsQemu(t, ['check', '--image-opts', 'driver=qcow2,file.filename=c64k.qcow2'], { cwd: dir })
  sameAsQemu(t, ['check', '--output=json', '--image-opts', 'driver=qcow2,file.filename=c64k.qcow2'], { cwd: dir })
  sameAsQemu(t, ['check', '-q', 'c64k.qcow2'], { cwd: dir })
  sameAsQemu(t, ['check', '-f', 'qcow2', '-U', '-T', 'none', 'c64k.qcow2'], { cwd: dir })
})

t.test('an image left dirty by a crash (lazy refcounts)', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', path.join(dir, 'dirty.qcow2'), '16M'])
  // qemu-io's abort leaves the dirty bit set and the refcounts not updated
  qemuIo(['write -P 1 0 128k', 'abort'], path.join(dir, 'dirty.qcow2'), [], { env: { ...process.env, LC_ALL: 'C' } })
  sameAsQemu(t, ['check', 'dirty.qcow2'], { cwd: dir })
  sameAsQemu(t, ['check', '--output=json', 'dirty.qcow2'], { cwd: dir })
})

t.test('command line errors and unsupported formats are reported like qemu-img', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'ok.qcow2'), '1M'])
  qemuImgOk(['create', '-q', '-f', 'raw', path.join(dir, 'disk.raw'), '1M'])
  const cases = [
    [], ['ok.qcow2', 'extra'], ['-r'], ['-r', 'foo', 'ok.qcow2'], ['--output=xml', 'ok.qcow2'],
    ['-T', 'foo', 'ok.qcow2'], ['-T', 'foo', '--output=xml', 'ok.qcow2'], ['-x', 'ok.qcow2'], ['--quiet', 'ok.qcow2'],
    ['missing.qcow2'], ['-f', 'qcow2', 'disk.raw'], ['disk.raw'], ['-f', 'raw', '--output=json', 'disk.raw'],
    ['-r', 'leaks', 'disk.raw'], ['-U', '-r', 'all', 'ok.qcow2'], ['--image-opts', '-f', 'qcow2', 'ok.qcow2'],
    ['--repair=leaks', 'ok.qcow2'], ['-r', 'leaks', '-r', 'all', 'ok.qcow2'], ['--output=json', '--output=human', 'ok.qcow2'],
  ]
  for (const args of cases) sameAsQemu(t, ['check', ...args], { cwd: dir })
})
