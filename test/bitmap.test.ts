// `bitmap` and persistent dirty bitmaps against the real qemu-img 7.2: the
// same command on identical copies must print the same, exit the same and
// leave the same bitmaps (names, granularity, flags and contents) in images
// that qemu-img check finds clean; guest writes through qimg's driver must
// set the same bits as writes through qemu-io.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImg, qemuImgOk, qemuIoOk, qemuIo } from './helpers/run.js'
import { qimgFast } from './helpers/fast.js'
import { bitmapState, checkCounts, setBitmapFlags } from './helpers/bitmap-state.js'

const fixtures = t.testdir()
const fx = (name: string): string => path.join(fixtures, name)

function build (): void {
  qemuImgOk(['create', '-q', '-f', 'qcow2', fx('c.qcow2'), '10M'])
  qemuImgOk(['bitmap', '--add', fx('c.qcow2'), 'g0'])
  qemuIoOk(['write 0 512', 'write 1M 4k'], fx('c.qcow2'))
  qemuImgOk(['bitmap', '--add', '-g', '8k', '--disable', fx('c.qcow2'), 'dd'])
  qemuImgOk(['bitmap', '--add', '-g', '512', fx('c.qcow2'), 'fine'])
  qemuIoOk(['write 3M 70k', 'write -z 5M 64k', 'discard 7M 64k'], fx('c.qcow2'))

  qemuImgOk(['create', '-q', '-f', 'qcow2', fx('iu.qcow2'), '10M'])
  for (const [name, extra] of [['b', []], ['s', ['-g', '512']], ['dis', ['--disable']]] as const) {
    qemuImgOk(['bitmap', '--add', ...extra, fx('iu.qcow2'), name])
  }
  qemuIoOk(['write 2M 64k'], fx('iu.qcow2'))
  setBitmapFlags(fx('iu.qcow2'), 'b', 3) // in use + auto: what a crash leaves

  qemuImgOk(['create', '-q', '-f', 'qcow2', fx('o20.qcow2'), '20M'])
  qemuImgOk(['bitmap', '--add', fx('o20.qcow2'), 'ob'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', fx('o10.qcow2'), '10M'])
  qemuImgOk(['bitmap', '--add', '-g', '1M', fx('o10.qcow2'), 'ob'])
  qemuIoOk(['write 9M 1k', 'write 100k 1k'], fx('o10.qcow2'))

  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', fx('v2.qcow2'), '10M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', fx('big.qcow2'), '4T'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', fx('c4k.qcow2'), '10M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', fx('c2m.qcow2'), '10M'])
  fs.writeFileSync(fx('r.raw'), Buffer.alloc(1 << 20))
}
build()

const long1023 = 'x'.repeat(1023)
const long1024 = 'y'.repeat(1024)

/** [file whose bitmaps are compared afterwards, arguments] */
const cases: Array<[string, string[]]> = [
  ['c.qcow2', ['c.qcow2', 'b0']],
  ['c.qcow2', ['--add', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--add', 'c.qcow2']],
  ['c.qcow2', ['--add', 'c.qcow2', 'b1', 'extra']],
  ['c.qcow2', ['--add', 'c.qcow2', 'new']],
  ['c4k.qcow2', ['--add', 'c4k.qcow2', 'new']],
  ['c2m.qcow2', ['--add', 'c2m.qcow2', 'new']],
  ['c.qcow2', ['--remove', 'c.qcow2', 'nope']],
  ['c.qcow2', ['--remove', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--clear', 'c.qcow2', 'nope']],
  ['c.qcow2', ['--clear', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--enable', 'c.qcow2', 'dd']],
  ['c.qcow2', ['--disable', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--disable', 'c.qcow2', 'nope']],
  ['c.qcow2', ['--merge', 'x', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'fine', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'g0', 'c.qcow2', 'fine']],
  ['c.qcow2', ['--merge', 'g0', 'c.qcow2', 'nope']],
  ['c.qcow2', ['--add', '-g', '128k', 'c.qcow2', 'm', '--merge', 'fine', '--merge', 'dd', '--disable']],
  ['c.qcow2', ['--add', '--disable', '-g', '16k', 'c.qcow2', 'n', '--merge', 'fine', '--enable', '--clear']],
  ['c.qcow2', ['--add', '-g', '1000', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '256', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '4G', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '2G', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '4294971392', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', 'abc', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '0', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '-5', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '16E', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--add', '-g', '1.5k', 'c.qcow2', 'b2']],
  ['c.qcow2', ['--remove', '-g', '512', 'c.qcow2', 'g0']],
  ['c.qcow2', ['-g', '0', '--remove', 'c.qcow2', 'g0']],
  ['c.qcow2', ['-b', 'x', '--add', 'c.qcow2', 'b2']],
  ['c.qcow2', ['-F', 'raw', '--add', 'c.qcow2', 'b2']],
  ['c.qcow2', ['-g', '4k', 'c.qcow2']],
  ['c.qcow2', ['--add', 'c.qcow2', '']],
  ['c.qcow2', ['--add', '-g', '1000', 'c.qcow2', '']],
  ['c.qcow2', ['--add', 'c.qcow2', long1023]],
  ['c.qcow2', ['--add', 'c.qcow2', long1024]],
  ['c.qcow2', ['--add', '--add', 'c.qcow2', 'dup']],
  ['c.qcow2', ['--add', '--remove', '--add', '-g', '8k', 'c.qcow2', 'again']],
  ['c.qcow2', ['--remove', '--add', 'c.qcow2', 'later']],
  ['c.qcow2', ['--dis', '--e', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o20.qcow2', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o10.qcow2', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o10.qcow2', '-F', 'qcow2', 'c.qcow2', 'fine']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o10.qcow2', '-F', 'raw', 'c.qcow2', 'fine']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o10.qcow2', '-F', 'foo', 'c.qcow2', 'fine']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'missing.qcow2', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--add', 'c.qcow2', 'added', '--merge', 'ob', '-b', 'missing.qcow2']],
  ['c.qcow2', ['--merge', 'g0', '-b', 'r.raw', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'g0', '-b', 'c.qcow2', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--merge', 'ob', '-b', 'o10.qcow2', '--merge', 'dd', 'c.qcow2', 'g0']],
  ['c.qcow2', ['--add', '--image-opts', 'driver=qcow2,file.filename=c.qcow2', 'io']],
  ['c.qcow2', ['--add', '--image-opts', '-f', 'qcow2', 'driver=qcow2,file.filename=c.qcow2', 'io']],
  ['c.qcow2', ['--add', '--image-opts', 'c.qcow2', 'io']],
  ['c.qcow2', ['--add', '--object', 'secret,id=s0,data=x', 'c.qcow2', 'obj']],
  ['c.qcow2', ['--add', '--object', 'foo', 'c.qcow2']],
  ['c.qcow2', ['--add', '-f', 'foo', 'c.qcow2', 'x']],
  ['c.qcow2', ['--add', 'missing.qcow2', 'x']],
  ['c.qcow2', ['--add', '-U', 'c.qcow2', 'x']],
  ['iu.qcow2', ['--clear', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--enable', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--disable', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--add', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--merge', 's', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--merge', 'b', 'iu.qcow2', 's']],
  ['iu.qcow2', ['--merge', 'nope', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--merge', 'b', '-b', 'o10.qcow2', 'iu.qcow2', 'dis']],
  ['iu.qcow2', ['--remove', 'iu.qcow2', 'b']],
  ['iu.qcow2', ['--add', 'iu.qcow2', 'fresh']],
  ['v2.qcow2', ['--add', 'v2.qcow2', 'b']],
  ['v2.qcow2', ['--add', 'v2.qcow2', long1024]],
  ['v2.qcow2', ['--add', '-g', '1000', 'v2.qcow2', 'b']],
  ['big.qcow2', ['--add', '-g', '512', 'big.qcow2', 'b']],
  ['big.qcow2', ['--add', '-g', '1k', 'big.qcow2', 'b']],
  ['r.raw', ['--add', '-f', 'raw', 'r.raw', 'b']],
  ['r.raw', ['--add', 'r.raw', 'b']],
  ['r.raw', ['--add', '-f', 'raw', 'r.raw', '']],
  ['r.raw', ['--add', '-f', 'raw', '-g', '1000', 'r.raw', 'b']],
  ['r.raw', ['--remove', '-f', 'raw', 'r.raw', 'b']],
  ['r.raw', ['--merge', 'x', '-f', 'raw', 'r.raw', 'b']],
]

/** qemu names block nodes "#block1NN" with random digits; any such name compares equal. */
function normalize (s: string): string {
  return s.replace(/#block1\d\d/g, '#block1NN')
}

function copyFixtures (dir: string): void {
  for (const f of fs.readdirSync(fixtures)) fs.copyFileSync(fx(f), path.join(dir, f))
}

async function sameState (t: Test, a: string, b: string): Promise<void> {
  if (!a.endsWith('.qcow2')) return
  const [sa, sb] = [await bitmapState(a), await bitmapState(b)]
  t.same(sa.info, sb.info, 'bitmaps as qemu-img info lists them')
  t.same(sa.contents, sb.contents, 'bitmap contents')
  const [ca, cb] = [checkCounts(a), checkCounts(b)]
  t.same(ca.counts, cb.counts, `qemu-img check: ${ca.raw}`)
}

t.test('bitmap command lines', async t => {
  for (const [target, args] of cases) {
    const label = args.map(a => a.length > 20 ? `${a.slice(0, 8)}…(${a.length})` : a).join(' ')
    await t.test(label, async t => {
      const root = t.testdir({ a: {}, b: {} })
      const a = path.join(root, 'a')
      const b = path.join(root, 'b')
      copyFixtures(a)
      copyFixtures(b)
      const ours = await qimgFast(['bitmap', ...args], a)
      const theirs = qemuImg(['bitmap', ...args], { cwd: b })
      t.equal(ours.stdout, theirs.stdout, 'stdout')
      t.equal(normalize(ours.stderr), normalize(theirs.stderr), 'stderr')
      t.equal(ours.code, theirs.code, 'exit code')
      await sameState(t, path.join(a, target), path.join(b, target))
    })
  }
})

t.test('the random node name has qemu\'s form', async t => {
  const dir = t.testdir()
  fs.writeFileSync(path.join(dir, 'r.raw'), Buffer.alloc(4096))
  const r = await qimgFast(['bitmap', '--add', '-f', 'raw', 'r.raw', 'b'], dir)
  t.match(r.stderr, /^qemu-img: Operation add on bitmap b failed: Can't store persistent bitmaps to #block1\d\d: Operation not supported\n$/)
})

type Write = ['w' | 'z' | 'd' | 'c', number, number]

/** The same guest writes through qemu-io and through qimg's driver. */
async function writeBoth (t: Test, a: string, b: string, ops: Write[]): Promise<void> {
  const io = ops.map(([k, off, len]) => k === 'w' ? `write ${off} ${len}` : k === 'z' ? `write -z ${off} ${len}` : k === 'c' ? `write -c ${off} ${len}` : `discard ${off} ${len}`)
  const r = qemuIo(io, b)
  t.equal(r.code, 0, `qemu-io: ${r.stderr}`)
  const img = await openImage(a, { readOnly: false, format: 'qcow2' })
  try {
    for (const [k, off, len] of ops) {
      if (k === 'w') await img.write(Buffer.alloc(len, 0xcd), off)
      else if (k === 'z') await img.writeZeroes(off, len)
      else if (k === 'c') await img.writeCompressed!(Buffer.alloc(len, 0xcd), off)
      else await img.discard(off, len)
    }
  } finally {
    await img.close()
  }
}

t.test('guest writes set the bits qemu sets', async t => {
  const scenarios: Array<[string, Write[]]> = [
    ['c.qcow2', [['w', 0, 512], ['w', 1 << 20, 4096], ['w', 3 << 20, 71680], ['z', 5 << 20, 65536], ['d', 7 << 20, 65536], ['c', 8 << 20, 65536]]],
    ['c.qcow2', [['w', 10485760 - 512, 512], ['z', 0, 10485760]]],
    ['iu.qcow2', [['w', 4 << 20, 4096], ['d', 0, 1 << 20]]],
    ['c4k.qcow2', [['w', 4095, 2]]],
  ]
  for (const [file, ops] of scenarios) {
    await t.test(`${file}: ${ops.map(o => o.join(':')).join(' ')}`, async t => {
      const root = t.testdir({ a: {}, b: {} })
      const a = path.join(root, 'a', file)
      const b = path.join(root, 'b', file)
      fs.copyFileSync(fx(file), a)
      fs.copyFileSync(fx(file), b)
      if (file === 'c4k.qcow2') {
        qemuImgOk(['bitmap', '--add', '-g', '512', a, 'x'])
        fs.copyFileSync(a, b)
      }
      await writeBoth(t, a, b, ops)
      await sameState(t, a, b)
      const same = qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', a, b])
      t.equal(same.code, 0, 'same guest contents')
    })
  }
})

t.test('random guest writes set the bits qemu sets', async t => {
  const seed = (Math.random() * 2 ** 31) >>> 0
  let x = seed
  const rnd = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return (x >>> 8) % n }
  const size = 10 << 20
  const ops: Write[] = []
  for (let i = 0; i < 40; i++) {
    const off = rnd(size / 512) * 512
    const len = Math.min(size - off, (1 + rnd(256)) * 512)
    ops.push([(['w', 'w', 'z', 'd'] as const)[rnd(4)], off, len])
  }
  const root = t.testdir({ a: {}, b: {} })
  const a = path.join(root, 'a', 'c.qcow2')
  const b = path.join(root, 'b', 'c.qcow2')
  fs.copyFileSync(fx('c.qcow2'), a)
  fs.copyFileSync(fx('c.qcow2'), b)
  await writeBoth(t, a, b, ops)
  t.comment(`seed ${seed}`)
  await sameState(t, a, b)
})

t.test('resize keeps bitmaps as qemu-img resize does', async t => {
  for (const args of [['c.qcow2', '20M'], ['--shrink', 'c.qcow2', '3M'], ['iu.qcow2', '20M'], ['iu.qcow2', '10M'], ['c.qcow2', '1000']]) {
    await t.test(args.join(' '), async t => {
      const root = t.testdir({ a: {}, b: {} })
      const a = path.join(root, 'a')
      const b = path.join(root, 'b')
      copyFixtures(a)
      copyFixtures(b)
      const ours = await qimgFast(['resize', ...args], a)
      const theirs = qemuImg(['resize', ...args], { cwd: b })
      t.same([ours.stdout, ours.stderr, ours.code], [theirs.stdout, theirs.stderr, theirs.code], 'output')
      const file = args.find(x => x.endsWith('.qcow2'))!
      await sameState(t, path.join(a, file), path.join(b, file))
    })
  }
})

t.test('a read-write open marks bitmaps in use until close (what a crash leaves)', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'c.qcow2')
  fs.copyFileSync(fx('c.qcow2'), file)
  const img = await openImage(file, { readOnly: false, format: 'qcow2' })
  await img.write(Buffer.alloc(4096, 1), 9 << 20)
  const during = JSON.parse(qemuImg(['info', '-U', '--output=json', file]).stdout)['format-specific'].data.bitmaps
  t.same(during.map((b: { flags: string[] }) => b.flags), [['in-use', 'auto'], ['in-use'], ['in-use', 'auto']], 'all in use while open')
  const check = qemuImg(['check', '-U', '--output=json', file])
  t.notMatch(check.stdout, /"corruptions": [1-9]/, 'no corruption while open')
  await img.close()
  const after = JSON.parse(qemuImg(['info', '--output=json', file]).stdout)['format-specific'].data.bitmaps
  t.same(after.map((b: { flags: string[] }) => b.flags), [['auto'], [], ['auto']], 'in-use cleared on close')
  t.same(checkCounts(file).counts, [0, 0, 0], 'clean after close')
})

t.test('bitmaps a program without bitmap support left behind', async t => {
  const root = t.testdir({ a: {}, b: {} })
  const names = ['a', 'b'].map(d => path.join(root, d, 'c.qcow2'))
  for (const f of names) {
    fs.copyFileSync(fx('c.qcow2'), f)
    // autoclear: the bitmaps bit cleared, an unknown bit set
    const fd = fs.openSync(f, 'r+')
    const bits = Buffer.alloc(8)
    bits.writeBigUInt64BE(1n << 5n)
    fs.writeSync(fd, bits, 0, 8, 88)
    fs.closeSync(fd)
  }
  const info = [await qimgFast(['info', 'c.qcow2'], path.dirname(names[0])), qemuImg(['info', 'c.qcow2'], { cwd: path.dirname(names[1]) })]
  t.equal(info[0].stderr, info[1].stderr, 'the same warning')
  t.equal(info[0].stdout, info[1].stdout, 'no bitmaps listed')
  await writeBoth(t, names[0], names[1], [['w', 0, 4096]])
  t.same(fs.readFileSync(names[0]).subarray(0, 512), fs.readFileSync(names[1]).subarray(0, 512), 'the same header: autoclear cleared, extension dropped')
  t.same(checkCounts(names[0]).counts, checkCounts(names[1]).counts, 'the same leaks')
})

t.test('a version 2 image with a bitmaps extension (left by qemu\'s downgrade)', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'v2b.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', file, '10M'])
  qemuImgOk(['bitmap', '--add', file, 'b'])
  qemuImgOk(['amend', '-o', 'compat=0.10', file])
  const ours = await qimgFast(['info', 'v2b.qcow2'], dir)
  const theirs = qemuImg(['info', 'v2b.qcow2'], { cwd: dir })
  t.same([ours.stdout, ours.stderr, ours.code], [theirs.stdout, theirs.stderr, theirs.code])
  const other = path.join(dir, 'v2c.qcow2')
  fs.copyFileSync(file, other)
  await writeBoth(t, file, other, [['w', 0, 512]])
  t.same(fs.readFileSync(file).subarray(0, 512), fs.readFileSync(other).subarray(0, 512), 'the extension is dropped on a read-write open')
})

t.test('the decoder reads the bits qemu wrote', async t => {
  // c.qcow2: g0 (64k) saw writes at 0, 1M, 3M+70k, 5M (zero), 7M (discard);
  // dd (8k, disabled) none; fine (512) the last three
  const s = await bitmapState(fx('c.qcow2'))
  t.same(s.contents.g0, [[0, 1], [16, 17], [48, 50], [80, 81], [112, 113]])
  t.same(s.contents.dd, [])
  t.same(s.contents.fine, [[6144, 6284], [10240, 10368], [14336, 14464]])
})

t.test('DirtyBitmap', async t => {
  const { DirtyBitmap } = await import('../src/block/dirty-bitmap.js')
  const b = new DirtyBitmap(10000, 512, 64)
  t.equal(b.bitCount, 20)
  b.setRange(0, 1)
  b.setRange(511, 2)
  b.setRange(9999, 100)
  t.same([...b.runs()], [[0, 2], [19, 20]])
  t.same([...b.ranges()], [[0, 1024], [9728, 10000]])
  const big = new DirtyBitmap(10000, 4096, 64)
  big.merge(b)
  t.same([...big.runs()], [[0, 1], [2, 3]])
  const fine = new DirtyBitmap(1 << 20, 512, 16) // 128 bits per chunk: runs cross chunks
  fine.setRange(100 * 512, 300 * 512)
  t.same([...fine.runs()], [[100, 400]])
  t.equal(fine.count(), 300)
  fine.resize(200 * 512)
  t.same([...fine.runs()], [[100, 200]])
  fine.resize(1 << 20)
  t.same([...fine.runs()], [[100, 200]], 'growing adds clean bits')
  fine.loadChunk(7, 'ones')
  t.same([...fine.runs()], [[100, 200], [896, 1024]])
  t.equal(fine.chunk(3), null)
  t.not(fine.chunk(1), null)
})
