// Real-world images made by other tools (../shared/samples), with what
// qemu-img 7.2 says of each. Every sample whose format qimg reads must give
// the same info, map and raw content; samples qemu-img refuses must be
// refused with the same message.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { qimg, ROOT } from './helpers/run.js'
import { FORMATS } from '../src/block/registry.js'

// ../shared/samples beside the checkout (a git worktree one level deeper
// looks two levels up), or wherever QIMG_SAMPLES points. A checkout without
// the samples skips this file, saying so.
const SAMPLES = [process.env.QIMG_SAMPLES ?? '', path.resolve(ROOT, '../shared/samples'), path.resolve(ROOT, '../../shared/samples')]
  .find(d => d !== '' && fs.existsSync(path.join(d, 'expected.json')))
if (SAMPLES === undefined) {
  t.skip(`no samples: ../shared/samples/expected.json not found beside ${ROOT} (set QIMG_SAMPLES to the directory)`)
}
const expected = SAMPLES === undefined ? {} : JSON.parse(fs.readFileSync(path.join(SAMPLES, 'expected.json'), 'utf8')) as Record<string, Sample>

interface Sample {
  info?: Record<string, unknown>
  map?: Array<Record<string, unknown>>
  'raw-md5'?: string
  error?: string
  'convert-stderr'?: string
}

// the format of each sample, for those qemu-img refuses (no info to read it from)
const REFUSED_FORMAT: Record<string, string> = { 'afl5.img': 'vpc', 'afl9.vmdk': 'vmdk', 'iotest-dirtylog-10G-4M.vhdx': 'vhdx' }
const supported = new Set(FORMATS.map(f => f.name))

const dir = t.testdir()
for (const [name, want] of Object.entries(expected)) {
  const format = want.info ? String(want.info.format) : REFUSED_FORMAT[name]
  if (!supported.has(format)) {
    t.comment(`${name}: format ${format} is not implemented yet`)
    continue
  }
  t.test(name, async t => {
    const file = path.join(dir, name)
    if (!fs.existsSync(file)) execFileSync('sh', ['-c', `bzip2 -dc '${path.join(SAMPLES!, name)}.bz2' > '${file}'`])
    if (want.error) {
      const r = qimg(['info', name], { cwd: dir })
      t.equal(r.stderr.trimEnd(), want.error, 'refused like qemu-img')
      t.equal(r.code, 1)
      return
    }
    const info = JSON.parse(qimg(['info', '--output=json', name], { cwd: dir }).stdout) as Record<string, unknown>
    delete info['actual-size']
    t.same(info, want.info, 'info')
    const map = JSON.parse(qimg(['map', '--output=json', name], { cwd: dir }).stdout) as unknown
    t.same(map, want.map, 'map')
    const out = path.join(dir, `${name}.out.raw`)
    const r = qimg(['convert', '-O', 'raw', name, out], { cwd: dir })
    t.equal(r.stderr, want['convert-stderr'] ?? '', 'convert stderr')
    const md5 = crypto.createHash('md5').update(fs.readFileSync(out)).digest('hex')
    t.equal(md5, want['raw-md5'], 'raw content')
    fs.rmSync(out)
  })
}
