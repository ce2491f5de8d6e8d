// convert --bitmaps' library functions (the convert command calls them)
// against `qemu-img convert --bitmaps`: the copied bitmaps, their contents,
// and qemu's messages for inconsistent bitmaps and name clashes.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { QemuError } from '../src/cli/errors.js'
import { checkBitmapSource, copyBitmaps } from '../src/ops/bitmap-copy.js'
import { qemuImg, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { bitmapState, checkCounts, setBitmapFlags } from './helpers/bitmap-state.js'

const dir = t.testdir()
const src = path.join(dir, 'src.qcow2')
qemuImgOk(['create', '-q', '-f', 'qcow2', src, '10M'])
qemuImgOk(['bitmap', '--add', src, 'first'])
qemuIoOk(['write 1M 64k', 'write -z 4M 1M'], src)
qemuImgOk(['bitmap', '--add', '-g', '512', '--disable', src, 'second'])
qemuImgOk(['bitmap', '--add', '-g', '2M', src, 'third'])
qemuIoOk(['write 9M 512', 'discard 0 64k'], src)
qemuImgOk(['bitmap', '--merge', 'first', src, 'second'])
const broken = path.join(dir, 'broken.qcow2')
fs.copyFileSync(src, broken)
setBitmapFlags(broken, 'second', 1)

/** What qimg's convert does around the data copy: check the source, create the target, copy the bitmaps. */
async function qimgCopy (source: string, target: string, skipBroken: boolean, create = true): Promise<{ error?: string, warnings: string[] }> {
  const warnings: string[] = []
  const s = await openImage(source, { format: 'qcow2' })
  try {
    checkBitmapSource(s, skipBroken)
    if (create) qemuImgOk(['create', '-q', '-f', 'qcow2', target, String(s.size)])
    const tg = await openImage(target, { format: 'qcow2', readOnly: false })
    try {
      await copyBitmaps(s, tg, { skipBroken, warn: m => warnings.push(m) })
    } finally {
      await tg.close()
    }
  } catch (e) {
    if (e instanceof QemuError) return { error: `qemu-img: ${e.message}\n`, warnings }
    throw e
  } finally {
    await s.close()
  }
  return { warnings }
}

t.test('all bitmaps copied with names, granularity, flags and contents', async t => {
  const ours = path.join(dir, 'ours.qcow2')
  const theirs = path.join(dir, 'theirs.qcow2')
  const r = await qimgCopy(src, ours, false)
  t.same(r, { warnings: [] })
  qemuImgOk(['convert', '--bitmaps', '-O', 'qcow2', src, theirs])
  t.same(await bitmapState(ours), await bitmapState(theirs))
  t.same(checkCounts(ours).counts, [0, 0, 0], 'qemu-img check')
})

t.test('inconsistent bitmaps: refused, or skipped with a warning', async t => {
  const ours = path.join(dir, 'ours2.qcow2')
  const theirs = path.join(dir, 'theirs2.qcow2')
  const refused = await qimgCopy(broken, ours, false)
  const q = qemuImg(['convert', '--bitmaps', '-O', 'qcow2', broken, theirs])
  t.equal(refused.error, q.stderr)
  t.notOk(fs.existsSync(ours) || fs.existsSync(theirs), 'no target created')
  const skipped = await qimgCopy(broken, ours, true)
  const q2 = qemuImg(['convert', '--bitmaps', '--skip-broken-bitmaps', '-O', 'qcow2', broken, theirs])
  t.equal(skipped.warnings.map(w => `qemu-img: ${w}\n`).join(''), q2.stderr)
  t.same(await bitmapState(ours), await bitmapState(theirs))
})

t.test('copying into a target that has bitmaps of the same names (convert -n)', async t => {
  for (const existing of ['first', 'third']) {
    const ours = path.join(dir, `n-ours-${existing}.qcow2`)
    const theirs = path.join(dir, `n-theirs-${existing}.qcow2`)
    qemuImgOk(['create', '-q', '-f', 'qcow2', ours, '10M'])
    qemuImgOk(['bitmap', '--add', ours, existing])
    fs.copyFileSync(ours, theirs)
    const r = await qimgCopy(src, ours, false, false)
    const q = qemuImg(['convert', '-n', '--bitmaps', '-O', 'qcow2', src, theirs])
    t.equal(r.error, q.stderr, `error with '${existing}' taken`)
    // (the target's own bitmap saw convert's writes to the whole disk, which this test does not make)
    const [so, st] = [await bitmapState(ours), await bitmapState(theirs)]
    delete so.contents[existing]
    delete st.contents[existing]
    t.same(so, st, 'bitmaps copied before the clash stay')
  }
})
