// `snapshot`: qimg and qemu-img run on identical copies must print the same,
// exit the same and leave the same bytes (snapshot dates aside) — for
// create, apply and delete over the qcow2 variants, and for every refusal.
import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { checkClean, infoOf, rawOf, runBoth, sameFiles, twins } from './helpers/twins.js'

/** An image with plain, compressed and zero clusters, and (optionally) a backing file. */
function populated (dir: string, opts: string, backing = false): void {
  const f = (n: string): string => path.join(dir, n)
  if (backing) {
    qemuImgOk(['create', '-q', '-f', 'qcow2', f('base.qcow2'), '8M'])
    qemuIoOk(['write -P 7 0 8M'], f('base.qcow2'))
  }
  const b = backing ? ['-b', 'base.qcow2', '-F', 'qcow2'] : []
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', opts, ...b, f('a.qcow2'), '8M'])
  qemuIoOk(['write -P 1 0 100k', 'write -c -P 2 1M 64k', 'write -c -P 3 2M 64k', 'write -z 3M 64k', 'write -P 5 7M 4k'], f('a.qcow2'))
}

const VARIANTS = ['compat=1.1', 'compat=0.10', 'extended_l2=on', 'refcount_bits=8', 'refcount_bits=64', 'cluster_size=512', 'lazy_refcounts=on']

t.test('create, apply and delete leave the bytes qemu-img leaves', async t => {
  for (const opts of VARIANTS) {
    const d = twins(t, dir => {
      populated(dir, opts, opts === 'compat=1.1')
      qemuImgOk(['snapshot', '-c', 'first', 'a.qcow2'], { cwd: dir })
      qemuIoOk(['write -P 6 0 8k', 'write -z 1M 64k', 'discard 7M 64k', 'write -c -P 8 4M 64k'], path.join(dir, 'a.qcow2'))
      qemuImgOk(['snapshot', '-c', 'second', 'a.qcow2'], { cwd: dir })
      qemuIoOk(['write -P 9 64k 64k'], path.join(dir, 'a.qcow2'))
    })
    const steps = [['-c', 'third'], ['-a', 'first'], ['-d', 'second'], ['-a', '3'], ['-d', 'first'], ['-d', 'third'], ['-l']]
    for (const step of steps) {
      runBoth(t, d, ['snapshot', ...step, 'a.qcow2'], `${opts}: snapshot ${step.join(' ')}`)
      sameFiles(t, d, ['a.qcow2'])
    }
    checkClean(t, d.w, 'a.qcow2')
    t.same(infoOf(d.w, 'a.qcow2'), infoOf(d.q, 'a.qcow2'), `${opts}: same info`)
  }
})

t.test('apply restores the disk and its size; snapshots read back through qemu-img', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', 'a.qcow2', '64k'], { cwd: dir })
    qemuIoOk(['write -P 1 0 8k', 'write -c -P 2 16k 4k', 'write -z 24k 4k'], path.join(dir, 'a.qcow2'))
    qemuImgOk(['snapshot', '-c', 'small', 'a.qcow2'], { cwd: dir })
    qemuImgOk(['resize', '-q', 'a.qcow2', '20M'], { cwd: dir })
    qemuIoOk(['write -P 3 16M 4k', 'write -P 4 0 4k'], path.join(dir, 'a.qcow2'))
    qemuImgOk(['snapshot', '-c', 'big', 'a.qcow2'], { cwd: dir })
    qemuImgOk(['resize', '-q', '--shrink', 'a.qcow2', '32k'], { cwd: dir })
  })
  const before = rawOf(d.w, 'a.qcow2')
  for (const step of [['-a', 'big'], ['-a', 'small'], ['-a', 'big'], ['-d', 'small']]) {
    runBoth(t, d, ['snapshot', ...step, 'a.qcow2'])
    sameFiles(t, d, ['a.qcow2'])
  }
  t.equal(rawOf(d.w, 'a.qcow2').length, 20 << 20, 'the size of the applied snapshot')
  t.equal(before.length, 32 << 10)
  checkClean(t, d.w, 'a.qcow2')
})

t.test('the manual: take a snapshot, write, apply it, delete it', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', 'disk.qcow2', '4M'], { cwd: dir })
    qemuIoOk(['write -P 1 0 1M'], path.join(dir, 'disk.qcow2'))
  })
  const original = rawOf(d.w, 'disk.qcow2')
  runBoth(t, d, ['snapshot', '-c', 'before-upgrade', 'disk.qcow2'])
  qemuIoOk(['write -P 2 512k 1M'], path.join(d.w, 'disk.qcow2'))
  qemuIoOk(['write -P 2 512k 1M'], path.join(d.q, 'disk.qcow2'))
  runBoth(t, d, ['snapshot', '-a', 'before-upgrade', 'disk.qcow2'])
  t.ok(rawOf(d.w, 'disk.qcow2').equals(original), 'the disk is back as it was')
  runBoth(t, d, ['snapshot', '-d', 'before-upgrade', 'disk.qcow2'])
  sameFiles(t, d, ['disk.qcow2'])
  checkClean(t, d.w, 'disk.qcow2')
})

t.test('lookup rules: -a takes an id or a name, -d a name; duplicate names', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', 'a.qcow2', '1M'], { cwd: dir })
    for (const [name, p] of [['x', 1], ['1', 2], ['x', 3], ['2', 4]] as const) {
      qemuIoOk([`write -P ${p} 0 4k`], path.join(dir, 'a.qcow2'))
      qemuImgOk(['snapshot', '-c', name, 'a.qcow2'], { cwd: dir })
    }
  })
  for (const step of [['-a', '1'], ['-a', 'x'], ['-d', '4'], ['-d', '2'], ['-d', 'x'], ['-l'], ['-c', 'y'], ['-q', '-l'], ['-d', ''], ['-c', ''], ['-l']]) {
    runBoth(t, d, ['snapshot', ...step, 'a.qcow2'])
    sameFiles(t, d, ['a.qcow2'])
  }
  runBoth(t, d, ['snapshot', '-c', 'n'.repeat(300), 'a.qcow2'], 'a name longer than 255 bytes is cut')
  sameFiles(t, d, ['a.qcow2'])
})

t.test('refusals and messages', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', 'base.qcow2', '1M'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'a.qcow2'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'raw', 'r.raw', '1M'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'data_file=d.data', 'd.qcow2', '1M'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=1', 'r1.qcow2', '1M'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', 'orphan.qcow2', '1M'], { cwd: dir })
  })
  const cases = [
    ['-l', 'a.qcow2'], ['-q', '-l', 'a.qcow2'], ['a.qcow2'], ['-l'], ['-l', 'a.qcow2', 'b'], ['-c', 's', '-l', 'a.qcow2'],
    ['-l', '-l', 'a.qcow2'], ['-f', 'qcow2', '-l', 'a.qcow2'], ['-l', 'missing.qcow2'], ['-l', 'orphan.qcow2'],
    ['-l', 'r.raw'], ['-c', 's', 'r.raw'], ['-a', 's', 'r.raw'], ['-d', 's', 'r.raw'],
    ['-a', 'nope', 'a.qcow2'], ['-d', 'nope', 'a.qcow2'], ['-U', '-c', 's', 'a.qcow2'], ['-U', '-l', 'a.qcow2'],
    ['-c', 's', 'd.qcow2'], ['-a', 's', 'd.qcow2'], ['-d', 's', 'd.qcow2'], ['-c', 's', 'r1.qcow2'],
    ['-l', '--image-opts', 'driver=raw,file.filename=a.qcow2'], ['-c', 'x', '--image-opts', 'driver=raw,file.filename=a.qcow2'],
    ['-q', '-c', 'quiet', 'a.qcow2'], ['-l', '--image-opts', 'driver=qcow2,file.filename=a.qcow2'],
  ]
  for (const c of cases) runBoth(t, d, ['snapshot', ...c])
  sameFiles(t, d, ['a.qcow2', 'r.raw', 'd.qcow2', 'r1.qcow2'])
})
