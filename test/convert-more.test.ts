// convert against the real qemu-img: raw and several sources, snapshots,
// raw targets (preallocation, -n), and the output of -p, -q and --salvage.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk, qemuImg } from './helpers/run.js'
import { qimgFast } from './helpers/fast.js'
import { compress as zstdCompress } from 'zstd-napi'
import { allocation, breakFirstCompressedCluster, convertBoth, md5, misalignFirstL2, overlongFirstCompressedCluster, sectors, shortenFirstCompressedCluster, writeRaw } from './helpers/convert.js'

t.test('raw sources, several sources, snapshots', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  writeRaw(f('sparse.raw'), 5 << 20, [
    [0, sectors('DDZZZZZZZZZZZZDDDZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZDZ')],
    [(2 << 20) - 1536, sectors('DZZD')],
    [3 << 20, Buffer.alloc(1 << 20, 3)],
  ])
  fs.writeFileSync(f('odd.raw'), Buffer.alloc(1000, 9))
  fs.writeFileSync(f('empty.raw'), '')
  for (const S of ['4k', '0', '1k', '8k']) await convertBoth(t, dir, ['-f', 'raw', '-O', 'raw', '-S', S, 'sparse.raw'])
  await convertBoth(t, dir, ['-O', 'raw', 'odd.raw'])
  await convertBoth(t, dir, ['-O', 'raw', 'empty.raw'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('small.qcow2'), '1M'])
  qemuIoOk(['write -P 8 4k 60k'], f('small.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'odd.raw', 'empty.raw', 'small.qcow2', 'sparse.raw'])

  qemuImgOk(['create', '-q', '-f', 'qcow2', f('snap.qcow2'), '4M'])
  qemuIoOk(['write -P 1 0 64k'], f('snap.qcow2'))
  qemuImgOk(['snapshot', '-c', 'first', f('snap.qcow2')])
  qemuIoOk(['write -P 2 0 64k', 'write -P 3 1M 64k'], f('snap.qcow2'))
  qemuImgOk(['resize', '-q', f('snap.qcow2'), '6M'])
  qemuImgOk(['snapshot', '-c', '7', f('snap.qcow2')])
  for (const l of ['first', '1', '7', 'snapshot.id=1', 'snapshot.name=first', 'snapshot.id=2,snapshot.name=7']) {
    await convertBoth(t, dir, ['-O', 'raw', '-l', l, 'snap.qcow2'])
  }
  await convertBoth(t, dir, ['-O', 'raw', '-l', 'snapshot.name=first', 'snap.qcow2', 'odd.raw'])
  for (const l of ['nosuch', 'snapshot.id=1,snapshot.name=7', 'snapshot.id=', 'snapshot.foo=1']) {
    await convertBoth(t, dir, ['-O', 'raw', '-l', l, 'snap.qcow2'])
  }
  await convertBoth(t, dir, ['-O', 'raw', '-l', 'first', 'snap.qcow2', 'odd.raw'])
  await convertBoth(t, dir, ['-O', 'raw', '-l', 'x', 'odd.raw'])
})

t.test('raw targets: preallocation, -n, --target-is-zero', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('src.qcow2'), '2M'])
  qemuIoOk(['write -P 1 0 64k', 'write -P 0 64k 64k', 'write -z 1M 64k', 'write -P 2 1536k 4k'], f('src.qcow2'))
  for (const p of ['off', 'falloc', 'full']) {
    await convertBoth(t, dir, ['-O', 'raw', '-o', `preallocation=${p}`, 'src.qcow2'])
  }
  await convertBoth(t, dir, ['-O', 'raw', '-o', 'nocow=on,extent_size_hint=1M', 'src.qcow2'])
  // an existing target full of data: zero runs are punched out, unless told the target is zero
  const full = (target: string) => fs.writeFileSync(target, Buffer.alloc(3 << 20, 0xee))
  for (const extra of [[], ['-S', '0'], ['-S', '64k'], ['--target-is-zero'], ['-W', '-m', '3']]) {
    await convertBoth(t, dir, ['-n', ...extra, 'src.qcow2'], { prepare: full })
  }
  await convertBoth(t, dir, ['-n', '--target-image-opts', 'src.qcow2'], { prepare: full, name: 'target-image-opts (file name is not an option string)' })
  // --target-image-opts names the target by options
  const qT = f('tio-q.raw')
  const mT = f('tio-m.raw')
  full(qT)
  full(mT)
  const q = qemuImg(['convert', '-n', '--target-image-opts', 'src.qcow2', `driver=raw,file.filename=${qT}`], { cwd: dir })
  const m = await qimgFast(['convert', '-n', '--target-image-opts', 'src.qcow2', `driver=raw,file.filename=${mT}`], dir)
  t.same([m.code, m.stdout, m.stderr], [q.code, q.stdout, q.stderr], 'target-image-opts run')
  t.equal(md5(mT), md5(qT), 'target-image-opts bytes')
})

t.test('progress, quiet and salvage output', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('p.qcow2'), '100M'])
  qemuIoOk(['write 0 30M', 'write 50M 3M'], f('p.qcow2'))
  await convertBoth(t, dir, ['-p', '-O', 'raw', 'p.qcow2'])
  await convertBoth(t, dir, ['-p', '-q', '-O', 'raw', 'p.qcow2'])
  await convertBoth(t, dir, ['-p', '-S', '0', '-O', 'raw', 'p.qcow2'])
  writeRaw(f('p.raw'), 10 << 20, [[0, Buffer.alloc(2 << 20, 1)], [8 << 20, Buffer.alloc(2 << 20, 2)]])
  await convertBoth(t, dir, ['-p', '-O', 'raw', 'p.raw'])
  fs.writeFileSync(f('empty.raw'), '')
  await convertBoth(t, dir, ['-p', '-O', 'raw', 'empty.raw'])
  // the progress total is counted with answers that run across L2 tables and
  // compressed clusters: 4k clusters (2 MiB per table), compressed, plain and zero runs over four tables
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', f('pc.qcow2'), '8M'])
  qemuIoOk(['write -c -P 1 0 64k', 'write -P 2 1M 3M', 'write -c -P 3 5M 1M', 'write -z 6M 512k', 'write -c -P 4 7M 4k'], f('pc.qcow2'))
  await convertBoth(t, dir, ['-p', '-O', 'raw', 'pc.qcow2'])
  await convertBoth(t, dir, ['-p', '-O', 'qcow2', 'pc.qcow2'])

  // a compressed cluster that cannot be inflated: an error, or zeros with --salvage
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('bad.qcow2'), '1M'])
  qemuIoOk(['write -c -P 1 0 64k', 'write -c -P 2 128k 64k', 'write -P 3 256k 64k'], f('bad.qcow2'))
  breakFirstCompressedCluster(f('bad.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'bad.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '--salvage', 'bad.qcow2'])
  // block status failing everywhere in an L2 table: warnings for every sector, twice
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('badl2.qcow2'), '1M'])
  qemuIoOk(['write -P 1 0 64k'], f('badl2.qcow2'))
  misalignFirstL2(f('badl2.qcow2'))
  await convertBoth(t, dir, ['-O', 'raw', 'badl2.qcow2'])
  await convertBoth(t, dir, ['-O', 'raw', '--salvage', 'badl2.qcow2'])
  await convertBoth(t, dir, ['-q', '-O', 'raw', '--salvage', 'bad.qcow2'])
})

t.test('block status failing in a later L2 table: qemu-img\'s error at the same offset, with or without -p', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  // 4 KiB clusters: an L2 table covers 2 MiB; the second one is broken
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', f('late.qcow2'), '8M'])
  qemuIoOk(['write -P 1 0 2M', 'write -P 2 2M 1M'], f('late.qcow2'))
  misalignFirstL2(f('late.qcow2'), 1)
  for (const args of [['-O', 'raw'], ['-p', '-O', 'raw'], ['-O', 'qcow2']]) {
    const { qemu } = await convertBoth(t, dir, [...args, 'late.qcow2'])
    t.match(qemu.stderr, /error while reading block status at offset 2097152/, `qemu-img fails at the second table: ${args.join(' ')}`)
  }
  // without -p qimg does not walk the allocation first, so it has copied
  // what lies before the error (qemu-img, which walks first, nothing): the
  // difference the README states
  const ours = await qimgFast(['convert', '-O', 'raw', 'late.qcow2', 'ours.raw'], dir)
  t.not(ours.code, 0)
  const head = Buffer.alloc(2 << 20)
  const fd = fs.openSync(f('ours.raw'), 'r')
  fs.readSync(fd, head, 0, head.length, 0)
  fs.closeSync(fd)
  t.ok(head.equals(Buffer.alloc(2 << 20, 1)), 'the first 2 MiB are in qimg\'s target')
})

t.test('compressed streams that end early or go on past the cluster read as qemu-img reads them', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  // text: each cluster's stream is several sectors long
  const text = Buffer.from(Array.from({ length: 40000 }, (_, i) => `line ${i}\n`).join('')).subarray(0, 256 << 10)
  fs.writeFileSync(f('text.raw'), text)
  // zstd frames too: qemu-img reads one that ends early, or holds more than its cluster, as an I/O error
  const zstdFrame = (data: Buffer) => Buffer.from(zstdCompress(data))
  for (const [type, compress] of [['zlib', undefined], ['zstd', zstdFrame]] as const) {
    for (const name of ['short.qcow2', 'long.qcow2']) qemuImgOk(['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, f('text.raw'), f(name)])
    shortenFirstCompressedCluster(f('short.qcow2'))
    await convertBoth(t, dir, ['-O', 'raw', 'short.qcow2'], { name: `${type}: short` })
    overlongFirstCompressedCluster(f('long.qcow2'), Buffer.concat([text.subarray(128 << 10), text]), compress)
    await convertBoth(t, dir, ['-O', 'raw', 'long.qcow2'], { name: `${type}: long` })
  }
})

t.test('a broken compressed cluster in the middle of many: the clusters before it are copied, then the same error as qemu-img', async t => {
  // clusters are read, decompressed and compressed in batches (compressed-reader.ts, zstd-pool.ts, convert's groups)
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  const text = Buffer.from(Array.from({ length: 200000 }, (_, i) => `line ${i * 7919}\n`).join('')).subarray(0, 3 << 20)
  fs.writeFileSync(f('text.raw'), text)
  for (const type of ['zlib', 'zstd']) {
    const src = `broken-${type}.qcow2`
    qemuImgOk(['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, f('text.raw'), f(src)])
    breakFirstCompressedCluster(f(src), 37)
    await convertBoth(t, dir, ['-O', 'raw', src])
    for (const args of [['-c'], ['-c', '-o', 'compression_type=zstd'], []]) {
      const { qemu } = await convertBoth(t, dir, [...args, '-O', 'qcow2', src], { ext: '.qcow2' })
      t.not(qemu.code, 0, `${type} ${args.join(' ')}: qemu-img fails too`)
    }
    // intact, the same sources convert to what qemu-img makes
    qemuImgOk(['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', `compression_type=${type}`, f('text.raw'), f(src)])
    await convertBoth(t, dir, ['-O', 'raw', src])
    for (const args of [['-c'], ['-c', '-o', 'compression_type=zstd']]) {
      // (deflate streams differ between zlib builds: compare what they hold)
      const name = `${type} ${args.join(' ')} intact`
      const [q, m] = [f('q.qcow2'), f('m.qcow2')]
      for (const target of [q, m]) fs.rmSync(target, { force: true })
      const rq = qemuImg(['convert', ...args, '-O', 'qcow2', src, q], { cwd: dir })
      const rm = await qimgFast(['convert', ...args, '-O', 'qcow2', src, m], dir)
      t.same([rm.code, rm.stdout, rm.stderr], [rq.code, rq.stdout, rq.stderr], `run: ${name}`)
      t.equal(allocation(m), allocation(q), `allocation: ${name}`)
      t.equal(qemuImg(['compare', m, f('text.raw')]).code, 0, `content: ${name}`)
      t.equal(qemuImg(['check', m]).code, 0, `check: ${name}`)
    }
  }
})

t.test('qcow2 targets, created or given with -n: plain, compressed, with a backing file (-B)', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('base.qcow2'), '2M'])
  qemuIoOk(['write -P 1 0 64k', 'write -P 4 1M 64k'], f('base.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', f('top.qcow2')])
  qemuIoOk(['write -P 2 128k 64k', 'write -z 1M 64k', 'write -P 0 1536k 64k', 'write -P 3 1600k 4k'], f('top.qcow2'))
  const cases: Array<{ args: string[], backing?: boolean }> = [
    { args: [] },
    { args: ['-c'] },
    { args: ['-c', '-o', 'compression_type=zstd'] },
    { args: ['-S', '0'] },
    { args: ['-o', 'cluster_size=4k'] },
    { args: ['-o', 'preallocation=metadata'] },
    { args: ['-B', 'base.qcow2', '-F', 'qcow2'], backing: true },
  ]
  for (const c of cases) {
    for (const existing of [false, true]) {
      if (existing && c.args.includes('-o')) continue
      const name = `${existing ? '-n ' : ''}${c.args.join(' ')}`
      const prepare = (target: string) => {
        if (existing) qemuImgOk(['create', '-q', '-f', 'qcow2', ...(c.backing ? ['-b', 'base.qcow2', '-F', 'qcow2'] : []), target, '2M'])
      }
      const q = f('q.qcow2')
      const m = f('m.qcow2')
      for (const target of [q, m]) { fs.rmSync(target, { force: true }); prepare(target) }
      const args = ['convert', ...(existing ? ['-n'] : []), '-O', 'qcow2', ...c.args, 'top.qcow2']
      const rq = qemuImg([...args, q], { cwd: dir })
      const rm = await qimgFast([...args, m], dir)
      t.same([rm.code, rm.stdout, rm.stderr], [rq.code, rq.stdout, rq.stderr], `run: ${name}`)
      t.equal(allocation(m), allocation(q), `allocation: ${name}`)
      t.equal(qemuImg(['compare', q, m]).code, 0, `content: ${name}`)
      t.equal(qemuImg(['check', m]).code, 0, `check: ${name}`)
    }
  }
})

t.test('an encrypted target (luks): opened with its creation secret, zeros written out', async t => {
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', f('src.qcow2'), '2M'])
  qemuIoOk(['write -P 7 64k 64k', 'write -P 8 1M 4k'], f('src.qcow2'))
  const secret = ['--object', 'secret,id=s,data=pw']
  const r = await qimgFast(['convert', '-O', 'luks', ...secret, '-o', 'key-secret=s,iter-time=10', 'src.qcow2', 'out.luks'], dir)
  t.same([r.code, r.stdout, r.stderr], [0, '', ''], 'converted')
  const cmp = qemuImg(['compare', ...secret, '--image-opts', 'driver=luks,key-secret=s,file.filename=out.luks', 'driver=qcow2,file.filename=src.qcow2'], { cwd: dir })
  t.same([cmp.code, cmp.stdout], [0, 'Images are identical.\n'], 'qemu-img reads the same guest content')
})
