// Deliberately broken qcow2 images: `check` must report exactly what
// qemu-img reports, and `check -r leaks|all` must repair an identical copy
// the way qemu-img's own repair does: same messages and exit code, same
// result when qemu-img checks the repaired image, same guest content (and,
// where only refcounts or flags were broken, the content from before).
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImg, qemuImgOk, qemuIoOk, qimg } from './helpers/run.js'
import { layoutOf, l2EntryOffset, pokeU32, pokeU64, readU64, setRefcount16 } from './helpers/qcow2-poke.js'
import { openImage } from '../src/block/open.js'
import type { Qcow2Image } from '../src/formats/qcow2/driver.js'
import { repairQcow2 } from '../src/formats/qcow2/check.js'

const COPIED = 1n << 63n

function guestContent (file: string): Buffer {
  const raw = `${file}.raw`
  qemuImgOk(['convert', '-O', 'raw', file, raw])
  const data = fs.readFileSync(raw)
  fs.rmSync(raw)
  return data
}

/** Check a broken copy with both tools, then repair identical copies with both and compare the outcome. */
function compareCheckAndRepair (t: Test, work: string, broken: string, opts: { json?: boolean, sameContentAs?: Buffer } = {}): void {
  const name = path.basename(broken)
  for (const output of opts.json ? ['human', 'json'] : ['human']) {
    const args = ['check', `--output=${output}`, name]
    const q = qemuImg(args, { cwd: work })
    const m = qimg(args, { cwd: work })
    t.equal(m.stdout, q.stdout, `stdout: ${args.join(' ')}`)
    t.equal(m.stderr, q.stderr, `stderr: ${args.join(' ')}`)
    t.equal(m.code, q.code, `exit code: ${args.join(' ')}`)
  }
  for (const mode of ['leaks', 'all']) {
    const a = path.join(work, `qemu-${mode}`)
    const b = path.join(work, `qimg-${mode}`)
    for (const d of [a, b]) {
      fs.mkdirSync(d, { recursive: true })
      fs.copyFileSync(broken, path.join(d, 'x.qcow2'))
    }
    const args = ['check', '-r', mode, 'x.qcow2']
    const q = qemuImg(args, { cwd: a })
    const m = qimg(args, { cwd: b })
    t.equal(m.stdout, q.stdout, `stdout: check -r ${mode}`)
    t.equal(m.stderr, q.stderr, `stderr: check -r ${mode}`)
    t.equal(m.code, q.code, `exit code: check -r ${mode}`)
    const qa = qemuImg(['check', 'x.qcow2'], { cwd: a })
    const qb = qemuImg(['check', 'x.qcow2'], { cwd: b })
    t.equal(qb.stdout + qb.stderr + qb.code, qa.stdout + qa.stderr + qa.code, `qemu-img check after -r ${mode}`)
    if (qb.code === 0 || qb.code === 3) {
      const content = guestContent(path.join(b, 'x.qcow2'))
      t.ok(content.equals(guestContent(path.join(a, 'x.qcow2'))), `guest content after -r ${mode} equals qemu's`)
      if (opts.sameContentAs) t.ok(content.equals(opts.sameContentAs), `guest content unchanged by -r ${mode}`)
    }
  }
}

interface Scenario {
  name: string
  base: string
  break: (file: string) => void
  json?: boolean
  /** only refcounts/flags are broken: the guest content must survive repair */
  keepsContent?: boolean
}

const scenarios: Scenario[] = [
  { name: 'leaked cluster', base: 'plain', json: true, keepsContent: true, break: f => setRefcount16(f, 5, 2) },
  { name: 'refcount too low (0): rebuild', base: 'plain', json: true, keepsContent: true, break: f => setRefcount16(f, 5, 0) },
  { name: 'refcount too low (1 of 2)', base: 'snap', keepsContent: true, break: f => setRefcount16(f, 5, 1) },
  { name: 'two L2 entries share a cluster', base: 'plain', break: f => pokeU64(f, l2EntryOffset(f, 1), readU64(f, l2EntryOffset(f, 0))) },
  { name: 'L2 entry past the end of the file', base: 'plain', break: f => pokeU64(f, l2EntryOffset(f, 1), COPIED | 0x1000000n) },
  { name: 'L2 entry not cluster aligned', base: 'plain', break: f => pokeU64(f, l2EntryOffset(f, 1), readU64(f, l2EntryOffset(f, 1)) + 0x200n) },
  { name: 'preallocated zero cluster not aligned', base: 'plain', break: f => pokeU64(f, l2EntryOffset(f, 1), (readU64(f, l2EntryOffset(f, 1)) + 0x200n) | 1n) },
  { name: 'OFLAG_COPIED missing on a data cluster', base: 'plain', keepsContent: true, break: f => pokeU64(f, l2EntryOffset(f, 1), readU64(f, l2EntryOffset(f, 1)) & ~COPIED) },
  { name: 'OFLAG_COPIED missing on an L2 table', base: 'plain', keepsContent: true, break: f => pokeU64(f, layoutOf(f).l1Offset, readU64(f, layoutOf(f).l1Offset) & ~COPIED) },
  { name: 'OFLAG_COPIED set on a shared cluster', base: 'snap', keepsContent: true, break: f => pokeU64(f, l2EntryOffset(f, 2), readU64(f, l2EntryOffset(f, 2)) | COPIED) },
  { name: 'reserved bits in L1 and L2 entries', base: 'plain', break: f => { pokeU64(f, l2EntryOffset(f, 1), readU64(f, l2EntryOffset(f, 1)) | 0x20n); pokeU64(f, layoutOf(f).l1Offset, readU64(f, layoutOf(f).l1Offset) | (1n << 60n)) } },
  { name: 'compressed cluster with OFLAG_COPIED', base: 'compressed', break: f => pokeU64(f, l2EntryOffset(f, 0), readU64(f, l2EntryOffset(f, 0)) | COPIED) },
  { name: 'refcount table entry cleared', base: 'plain', json: true, keepsContent: true, break: f => pokeU64(f, layoutOf(f).reftableOffset, 0n) },
  { name: 'refcount block outside the image', base: 'plain', keepsContent: true, break: f => pokeU64(f, layoutOf(f).reftableOffset, 0x10000000n) },
  { name: 'refcount block used twice', base: 'plain', keepsContent: true, break: f => pokeU64(f, layoutOf(f).reftableOffset + 8, BigInt(layoutOf(f).refblock0)) },
  { name: 'refcount block not aligned', base: 'plain', json: true, break: f => pokeU64(f, layoutOf(f).reftableOffset, BigInt(layoutOf(f).refblock0 + 0x200)) },
  { name: 'refcount table grown over other metadata', base: 'plain', break: f => pokeU32(f, 56, 4) },
  { name: 'snapshot L1 table not aligned', base: 'snap', break: f => pokeU64(f, layoutOf(f).snapshotsOffset, readU64(f, layoutOf(f).snapshotsOffset) + 0x200n) },
  // the table is the last thing in the file: the third entry reads as zeros
  { name: 'incomplete snapshot table entry', base: 'snaplast', keepsContent: true, break: f => pokeU32(f, 60, 3) },
  { name: 'rebuild with holes and many refcount blocks', base: 'small', keepsContent: true, break: f => { pokeU64(f, layoutOf(f).reftableOffset, 0n); pokeU64(f, layoutOf(f).reftableOffset + 16, 0n) } },
  { name: 'refcount overflow with 1-bit refcounts', base: 'rb1', break: f => pokeU64(f, l2EntryOffset(f, 1), readU64(f, l2EntryOffset(f, 0))) },
  { name: 'invalid subcluster bitmaps', base: 'extl2', break: f => { const l2 = layoutOf(f).l2Offset0; pokeU64(f, l2 + 8, 0x0000000300000003n); pokeU64(f, l2 + 56, 0xffffffffn) } },
  { name: 'dirty and corrupt bits on a consistent image', base: 'plain', keepsContent: true, break: f => pokeU64(f, 72, 3n) },
  { name: 'file truncated below its metadata', base: 'plain', break: f => fs.truncateSync(f, fs.statSync(f).size - 0x30000) },
]

t.test('broken images: check and repair match qemu-img', async t => {
  const dir = t.testdir()
  const base = (n: string): string => path.join(dir, `${n}.qcow2`)
  const create = (n: string, opts: string[], size: string, io: string[]): void => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', ...opts, base(n), size])
    if (io.length) qemuIoOk(io, base(n))
  }
  create('plain', [], '64M', ['write -P 1 0 1M', 'write -P 2 10M 64k'])
  create('snap', [], '16M', ['write -P 1 0 256k'])
  qemuImgOk(['snapshot', '-c', 'one', base('snap')])
  qemuIoOk(['write -P 2 64k 64k', 'write -c -P 3 1M 64k'], base('snap'))
  create('snaplast', [], '16M', ['write -P 1 0 64k'])
  qemuImgOk(['snapshot', '-c', 'one', base('snaplast')])
  qemuImgOk(['snapshot', '-c', 'two', base('snaplast')])
  create('compressed', [], '16M', ['write -c -P 3 0 64k', 'write -c -P 4 64k 64k', 'write -P 5 128k 64k'])
  create('small', ['-o', 'cluster_size=512'], '2M', ['write -P 1 0 700k', 'discard 64k 32k', 'discard 300k 8k', 'write -P 2 1500k 100k'])
  create('rb1', ['-o', 'refcount_bits=1'], '16M', ['write -P 1 0 192k'])
  create('extl2', ['-o', 'extended_l2=on'], '16M', ['write -P 1 0 4k', 'write -P 2 64k 64k', 'write -z 128k 4k', 'write -c -P 3 192k 64k'])
  const content = new Map<string, Buffer>()

  for (const sc of scenarios) {
    await t.test(sc.name, async t => {
      const work = path.join(dir, sc.name.replace(/\W+/g, '-'))
      fs.mkdirSync(work)
      const broken = path.join(work, 'broken.qcow2')
      fs.copyFileSync(base(sc.base), broken)
      sc.break(broken)
      if (!content.has(sc.base)) content.set(sc.base, guestContent(base(sc.base)))
      compareCheckAndRepair(t, work, broken, { json: sc.json, sameContentAs: sc.keepsContent ? content.get(sc.base) : undefined })
    })
  }
})

t.test('repairQcow2 repairs an image opened read-write through the API', async t => {
  const dir = t.testdir()
  const file = path.join(dir, 'x.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', file, '16M'])
  qemuIoOk(['write -P 1 0 192k'], file)
  const before = guestContent(file)
  setRefcount16(file, 5, 0) // what a crash with lazy refcounts leaves behind
  pokeU64(file, 72, 1n) // dirty
  const img = await openImage(file, { readOnly: false, check: true }) as Qcow2Image
  try {
    const r = await repairQcow2(img)
    t.equal(r.corruptionsFixed, 1, 'the refcount was fixed')
    t.equal(r.corruptions + r.leaks + r.checkErrors, 0, 'nothing left')
    t.ok(r.messages.includes('Rebuilding refcount structure'), 'the refcount structure was rebuilt')
  } finally {
    await img.close()
  }
  const after = qemuImg(['check', file])
  t.equal(after.code, 0, 'qemu-img check passes')
  t.equal(qemuImg(['info', '--output=json', file]).stdout.includes('"dirty-flag": false'), true, 'dirty bit cleared')
  t.ok(guestContent(file).equals(before), 'guest content unchanged')
})
