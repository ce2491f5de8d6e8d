// `commit`: qimg and qemu-img on identical copies print the same, exit the
// same and leave the same guest data in every layer, the same allocation
// (qemu's host offsets in the base depend on the order its parallel copy
// requests finish, so maps are compared without them), the same emptied top
// image byte for byte, and images qemu-img check finds clean.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { checkClean, infoOf, mapOf, rawOf, runBoth, sameContent, sameFiles, twins, type Twins } from './helpers/twins.js'

const MiB = 1 << 20

/** qemu-io commands whose range ("write ... OFFSET LENGTH", in KiB) fits in `size` MiB. */
function within (size: number, cmds: Array<[string, number, number]>): string[] {
  return cmds.filter(([, off, len]) => off + len <= size * 1024).map(([c, off, len]) => `${c} ${off}k ${len}k`)
}

/** A three-layer chain A <- B <- C with mixed cluster sizes, zeros and compressed clusters (sizes in MiB). */
function chain (dir: string, o: { a?: string, b?: string, c?: string, aFmt?: 'qcow2' | 'raw', sizes?: [number, number, number], bCompressed?: number } = {}): void {
  const f = (n: string): string => path.join(dir, n)
  const [sa, sb, sc] = o.sizes ?? [4, 4, 4]
  const aFmt = o.aFmt ?? 'qcow2'
  const aName = aFmt === 'raw' ? 'A.raw' : 'A.qcow2'
  qemuImgOk(['create', '-q', '-f', aFmt, ...(o.a ? ['-o', o.a] : []), f(aName), String(sa * MiB)])
  qemuIoOk(within(sa, [['write -P 1', 0, 1024], ['write -P 1', 3072, 1024]]), f(aName), ['-f', aFmt])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', o.b ?? 'cluster_size=64k', '-b', aName, '-F', aFmt, f('B.qcow2'), String(sb * MiB)])
  qemuIoOk(within(sb, [['write -c -P 4', 2048, o.bCompressed ?? 64], ['write -P 2', 512, 1024], ['write -z', 3072, 128]]), f('B.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', o.c ?? 'cluster_size=4k', '-b', 'B.qcow2', '-F', 'qcow2', f('C.qcow2'), String(sc * MiB)])
  qemuIoOk(within(sc, [['write -P 3', 1024, 3], ['write -z', 3500, 4], ['write -P 5', 2048, 1], ['write -P 0', 2200, 64]]), f('C.qcow2'))
}

const LAYERS = ['A.qcow2', 'B.qcow2', 'C.qcow2']

/** Every layer reads the same, has the same allocation, and is clean. */
function sameChains (t: Test, d: Twins, layers: string[], name: string): void {
  for (const l of layers) {
    sameContent(t, d, l, `${name}: ${l}`)
    t.same(mapOf(d.w, l, false), mapOf(d.q, l, false), `${name}: ${l} allocated as qemu's`)
    if (l.endsWith('.qcow2')) checkClean(t, d.w, l)
  }
  t.same(infoOf(d.w, layers[layers.length - 1]), infoOf(d.q, layers[layers.length - 1]), `${name}: same info`)
}

t.test('commit into the backing file, and into a base further down', async t => {
  const shapes: Array<Parameters<typeof chain>[1]> = [
    {},
    { a: 'cluster_size=4k', c: 'cluster_size=512' },
    { b: 'cluster_size=2M', c: 'extended_l2=on', bCompressed: 2048 },
    { b: 'compat=0.10', c: 'compat=0.10' },
    { sizes: [1, 2, 4] },
    { sizes: [4, 1, 4] },
    { c: 'lazy_refcounts=on,refcount_bits=8' },
  ]
  for (const shape of shapes) {
    for (const args of [[], ['-d'], ['-b', 'A.qcow2'], ['-b', 'B.qcow2']]) {
      const d = twins(t, dir => chain(dir, shape))
      const before = rawOf(d.w, 'C.qcow2')
      const name = `${JSON.stringify(shape)} commit ${args.join(' ')}`
      runBoth(t, d, ['commit', ...args, 'C.qcow2'], name)
      sameChains(t, d, LAYERS, name)
      t.ok(rawOf(d.w, 'C.qcow2').equals(before), `${name}: the top reads as before`)
      // the top image: emptied (or left alone) exactly as qemu leaves it
      sameFiles(t, d, ['C.qcow2'])
      if (args[0] === '-b' && args[1] === 'A.qcow2') sameFiles(t, d, ['B.qcow2'])
    }
  }
})

t.test('raw base; a base smaller than the top is grown', async t => {
  for (const sizes of [[4, 4, 4], [1, 4, 4], [1, 1, 4]] as Array<[number, number, number]>) {
    for (const args of [['-b', 'A.raw'], []]) {
      const d = twins(t, dir => chain(dir, { aFmt: 'raw', sizes }))
      const name = `raw ${sizes.join('/')} commit ${args.join(' ')}`
      runBoth(t, d, ['commit', ...args, 'C.qcow2'], name)
      sameChains(t, d, ['A.raw', 'B.qcow2', 'C.qcow2'], name)
      sameFiles(t, d, ['C.qcow2'])
    }
  }
})

t.test('emptying the top: rebuilt when nothing else is in it, else every cluster discarded', async t => {
  // (qemu rewrites the bitmap directory of an image it opens read-write, so that one is not compared byte for byte)
  const cases: Array<[string, (dir: string) => void]> = [
    ['snapshot in the top', dir => qemuImgOk(['snapshot', '-c', 's', 'C.qcow2'], { cwd: dir })],
    ['bitmap in the top', dir => qemuImgOk(['bitmap', '--add', 'C.qcow2', 'bm'], { cwd: dir })],
    ['big L1 table, moved', dir => {
      qemuImgOk(['resize', '-q', 'C.qcow2', '3G'], { cwd: dir })
      qemuIoOk(['write -P 6 2G 64k'], path.join(dir, 'C.qcow2'))
    }],
    ['small clusters, refcount table moved', dir => qemuIoOk(['write -P 7 0 3M'], path.join(dir, 'C.qcow2'))],
  ]
  for (const [name, extra] of cases) {
    const d = twins(t, dir => {
      chain(dir, name.startsWith('small') ? { c: 'cluster_size=512,refcount_bits=64' } : {})
      extra(dir)
    })
    runBoth(t, d, ['commit', 'C.qcow2'], name)
    if (!name.startsWith('bitmap')) sameFiles(t, d, ['C.qcow2'])
    sameChains(t, d, LAYERS, name)
  }
})

t.test('the manual: commit two layers down leaves the layers in between', async t => {
  const d = twins(t, dir => chain(dir))
  const view = rawOf(d.w, 'C.qcow2')
  runBoth(t, d, ['commit', '-b', 'A.qcow2', 'C.qcow2'])
  sameFiles(t, d, ['B.qcow2', 'C.qcow2'])
  t.ok(rawOf(d.w, 'A.qcow2').equals(view), 'the base now holds what the top showed')
  sameChains(t, d, LAYERS, 'commit -b A.qcow2')
})

t.test('refusals and messages', async t => {
  const d = twins(t, dir => {
    chain(dir)
    qemuImgOk(['create', '-q', '-f', 'qcow2', 'lone.qcow2', '1M'], { cwd: dir })
  })
  const cases = [
    [], ['a', 'b'], ['lone.qcow2'], ['-p', 'lone.qcow2'], ['-b', 'nothere.qcow2', 'C.qcow2'], ['-b', 'C.qcow2', 'C.qcow2'],
    ['-b', './A.qcow2', '-d', 'C.qcow2'], ['-r', 'x', 'C.qcow2'], ['-r', '99999999999999999999', 'C.qcow2'], ['-t', 'foo', 'C.qcow2'],
    ['-p', '-t', 'foo', 'C.qcow2'], ['-f', 'raw', 'C.qcow2'], ['missing.qcow2'], ['-p', 'missing.qcow2'], ['-q', '-b', 'B.qcow2', 'C.qcow2'],
    ['--image-opts', '-d', 'driver=qcow2,file.filename=C.qcow2'], ['-p', '-q', '-d', 'C.qcow2'],
  ]
  for (const c of cases) runBoth(t, d, ['commit', ...c])
  sameChains(t, d, LAYERS, 'after the refusals')
})

t.test('progress output', async t => {
  const d = twins(t, dir => chain(dir))
  const r = runBoth(t, d, ['commit', '-p', '-d', 'C.qcow2'], 'commit -p', { stdout: false })
  // qemu prints a line per main-loop turn, so only the shape can be compared
  const lines = (s: string): string[] => s.split('\r').filter(l => l !== '\n' && l !== '')
  for (const out of [r.qemu.stdout, r.ours.stdout]) {
    const l = lines(out.replace(/\nImage committed\.\n$/, ''))
    t.equal(l[0], '    (0.00/100%)', 'starts at 0')
    t.equal(l[l.length - 1], '    (100.00/100%)', 'ends at 100')
    const values = l.map(x => Number(/\((\d+\.\d\d)\/100%\)/.exec(x)?.[1]))
    t.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), 'never goes back')
    t.match(out, /\r\nImage committed\.\n$/)
  }
})

t.test('a base whose format is not recorded is probed without a warning', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'raw', 'base.raw', '1M'], { cwd: dir })
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'top.qcow2'], { cwd: dir })
    dropBackingFormat(path.join(dir, 'top.qcow2'))
    qemuIoOk(['write -P 1 0 64k'], path.join(dir, 'top.qcow2'))
  })
  runBoth(t, d, ['commit', 'top.qcow2'])
  sameFiles(t, d, ['top.qcow2', 'base.raw'])
})

/** Remove the backing format extension (the first one, as qemu writes it), as images from old qemu versions lack it. */
function dropBackingFormat (file: string): void {
  const f = fs.readFileSync(file)
  if (f.readUInt32BE(112) !== 0xe2792aca) throw new Error('no backing format extension first')
  const extLen = 8 + ((f.readUInt32BE(116) + 7) & ~7)
  const nameAt = Number(f.readBigUInt64BE(8))
  const end = nameAt + f.readUInt32BE(16)
  const rest = Buffer.from(f.subarray(112 + extLen, end))
  f.fill(0, 112, end)
  rest.copy(f, 112)
  f.writeBigUInt64BE(BigInt(nameAt - extLen), 8)
  fs.writeFileSync(file, f)
}
