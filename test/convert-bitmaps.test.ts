// convert --bitmaps through the command against qemu-img convert --bitmaps:
// the target's data and bitmaps, and qemu's messages for inconsistent
// bitmaps, name clashes and sources or targets without bitmap support.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImg, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { qimgFast } from './helpers/fast.js'
import { bitmapState, checkCounts, setBitmapFlags } from './helpers/bitmap-state.js'

const dir = t.testdir()
const f = (n: string) => path.join(dir, n)
qemuImgOk(['create', '-q', '-f', 'qcow2', f('src.qcow2'), '10M'])
qemuImgOk(['bitmap', '--add', f('src.qcow2'), 'first'])
qemuIoOk(['write 1M 64k', 'write -z 4M 1M'], f('src.qcow2'))
qemuImgOk(['bitmap', '--add', '-g', '512', '--disable', f('src.qcow2'), 'second'])
qemuIoOk(['write 9M 512'], f('src.qcow2'))
fs.copyFileSync(f('src.qcow2'), f('broken.qcow2'))
setBitmapFlags(f('broken.qcow2'), 'second', 1)

/** Run convert with both tools into fresh (or prepared) targets; same output, same data, same bitmaps. */
async function both (t: Test, args: string[], prepare?: (target: string) => void): Promise<void> {
  const q = f('q.qcow2')
  const m = f('m.qcow2')
  for (const target of [q, m]) { fs.rmSync(target, { force: true }); prepare?.(target) }
  const rq = qemuImg(['convert', ...args, q], { cwd: dir })
  const rm = await qimgFast(['convert', ...args, m], dir)
  const name = args.join(' ')
  t.same([rm.code, rm.stdout, rm.stderr.split(m).join('T')], [rq.code, rq.stdout, rq.stderr.split(q).join('T')], `run: ${name}`)
  t.equal(fs.existsSync(m), fs.existsSync(q), `target made or not: ${name}`)
  if (rq.code !== 0 || !fs.existsSync(q)) return
  t.equal(qemuImg(['compare', q, m]).code, 0, `content: ${name}`)
  t.same(await bitmapState(m), await bitmapState(q), `bitmaps: ${name}`)
  t.same(checkCounts(m).counts, [0, 0, 0], `check: ${name}`)
}
type Test = typeof t

t.test('bitmaps copied with the data', async t => {
  await both(t, ['--bitmaps', '-O', 'qcow2', 'src.qcow2'])
  await both(t, ['--bitmaps', '-c', '-O', 'qcow2', 'src.qcow2'])
  await both(t, ['-n', '--bitmaps', '-O', 'qcow2', 'src.qcow2'], target => qemuImgOk(['create', '-q', '-f', 'qcow2', target, '10M']))
})

t.test('refusals and warnings', async t => {
  await both(t, ['--bitmaps', '-O', 'qcow2', 'broken.qcow2'])
  await both(t, ['--bitmaps', '--skip-broken-bitmaps', '-O', 'qcow2', 'broken.qcow2'])
  await both(t, ['--bitmaps', '-O', 'raw', 'src.qcow2'])
  await both(t, ['--bitmaps', '-O', 'qcow2', '-o', 'compat=0.10', 'src.qcow2'])
  await both(t, ['-n', '--bitmaps', '-O', 'qcow2', 'src.qcow2'], target => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', target, '10M'])
    qemuImgOk(['bitmap', '--add', target, 'second'])
  })
})
