// `rebase`: qimg and qemu-img on identical copies print the same, exit the
// same and leave the same bytes: safe mode writes exactly the sectors qemu
// writes, unsafe mode rewrites the header as qemu does.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { checkClean, infoOf, mapOf, rawOf, runBoth, sameFiles, twins } from './helpers/twins.js'

/**
 * old.qcow2 (with explicit zeros and a compressed cluster), new.raw and
 * new.qcow2 that differ from it in places, and a.qcow2 on top of old.qcow2.
 */
function layers (dir: string, o: { old?: string, neu?: string, top?: string, topOpts?: string, oldOpts?: string } = {}): void {
  const f = (n: string): string => path.join(dir, n)
  qemuImgOk(['create', '-q', '-f', 'qcow2', ...(o.oldOpts ? ['-o', o.oldOpts] : []), f('old.qcow2'), o.old ?? '4M'])
  qemuIoOk(['write -P 1 0 1M', 'write -P 0 1M 64k', 'write -P 5 2M 1k', 'write -c -P 6 2560k 64k'], f('old.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'raw', f('new.raw'), o.neu ?? '4M'])
  qemuIoOk(['write -P 1 0 512', 'write -P 1 1k 1M', 'write -P 7 2592k 64k'], f('new.raw'), ['-f', 'raw'])
  qemuImgOk(['convert', '-O', 'qcow2', f('new.raw'), f('new.qcow2')])
  qemuImgOk(['create', '-q', '-f', 'qcow2', ...(o.topOpts ? ['-o', o.topOpts] : []), '-b', 'old.qcow2', '-F', 'qcow2', f('a.qcow2'), o.top ?? '4M'])
  qemuIoOk(['write -P 9 512k 64k', 'write -z 2M 4k'], f('a.qcow2'))
}

const FILES = ['a.qcow2', 'old.qcow2', 'new.raw', 'new.qcow2']

t.test('safe and unsafe rebases leave the bytes qemu-img leaves', async t => {
  const shapes = [
    {},
    { topOpts: 'extended_l2=on' },
    { topOpts: 'cluster_size=512' },
    { topOpts: 'compat=0.10', oldOpts: 'compat=0.10' },
    { old: '3M', neu: '5M', top: '6M', topOpts: 'cluster_size=4k' },
    { old: '6M', neu: '3M', top: '5M' },
    { top: '13M' },
  ]
  const commands = [
    ['-b', 'new.qcow2', '-F', 'qcow2'], ['-b', 'new.raw', '-F', 'raw'], ['-b', ''], ['-u', '-b', 'new.raw', '-F', 'raw'], ['-u'],
    ['-b', 'old.qcow2', '-F', 'qcow2'],
  ]
  for (const shape of shapes) {
    for (const cmd of commands) {
      const d = twins(t, dir => layers(dir, shape))
      const before = rawOf(d.w, 'a.qcow2')
      const name = `${JSON.stringify(shape)} rebase ${cmd.join(' ')}`
      runBoth(t, d, ['rebase', ...cmd, 'a.qcow2'], name)
      sameFiles(t, d, FILES)
      if (!cmd.includes('-u')) t.ok(rawOf(d.w, 'a.qcow2').equals(before), `${name}: the guest view is unchanged`)
      checkClean(t, d.w, 'a.qcow2')
    }
  }
})

t.test('progress output', async t => {
  for (const size of ['4M', '5M', '13M', '64M']) {
    const d = twins(t, dir => layers(dir, { top: size }))
    runBoth(t, d, ['rebase', '-p', '-b', 'new.raw', '-F', 'raw', 'a.qcow2'])
    runBoth(t, d, ['rebase', '-p', '-q', '-b', '', 'a.qcow2'])
  }
})

t.test('names relative to the image directory; the name is recorded as given', async t => {
  const d = twins(t, dir => {
    fs.mkdirSync(path.join(dir, 'd'))
    layers(path.join(dir, 'd'))
  })
  for (const cmd of [['-b', 'new.raw', '-F', 'raw'], ['-b', 'nope.qcow2', '-F', 'qcow2'], ['-b', '/nope/x.qcow2', '-F', 'qcow2'], ['-b', 'new.qcow2', '-F', 'qcow2']]) {
    runBoth(t, d, ['rebase', ...cmd, 'd/a.qcow2'])
    sameFiles(t, d, FILES.map(f => `d/${f}`))
  }
  t.same(infoOf(d.w, 'd/a.qcow2'), infoOf(d.q, 'd/a.qcow2'), 'info of the chain')
})

t.test('refusals and their messages', async t => {
  const d = twins(t, dir => {
    layers(dir)
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', 'orphan.qcow2', '1M'], { cwd: dir })
  })
  const cases = [
    [], ['a.qcow2'], ['-p', 'a.qcow2'], ['-b', 'x', 'a', 'b'], ['-t', 'foo', '-b', 'x', 'a.qcow2'], ['-T', 'foo', '-t', 'bar', '-b', 'x', 'a.qcow2'],
    ['-p', '-t', 'foo', '-b', 'x', 'a.qcow2'], ['-b', 'x', '-F', 'foo', 'a.qcow2'], ['-u', '-b', '', '-F', 'foo', 'a.qcow2'],
    ['-f', 'foo', '-b', 'x', '-F', 'qcow2', 'missing.qcow2'], ['-b', 'x', '-F', 'qcow2', 'missing.qcow2'],
    ['-b', 'new.raw', '-F', 'raw', 'orphan.qcow2'], ['-u', '-b', 'new.raw', '-F', 'raw', 'orphan.qcow2'],
    ['-b', 'new.raw', 'a.qcow2'], ['-u', '-b', 'new.raw', 'a.qcow2'], ['-U', '-b', 'new.raw', '-F', 'raw', 'a.qcow2'],
    ['-b', 'new.raw', '-F', 'qcow2', 'a.qcow2'], ['-f', 'raw', '-u', '-b', 'x', '-F', 'raw', 'new.raw'],
    ['-f', 'raw', '-b', 'new.qcow2', '-F', 'qcow2', 'new.raw'], ['-b', 'old.qcow2', '-F', 'raw', 'a.qcow2'],
    ['--image-opts', '-u', '-b', 'old.qcow2', '-F', 'qcow2', 'driver=qcow2,file.filename=a.qcow2'],
  ]
  for (const c of cases) {
    runBoth(t, d, ['rebase', ...c])
    sameFiles(t, d, [...FILES, 'orphan.qcow2'])
  }
})

t.test('the manual: a thin image of the differences between two images', async t => {
  const d = twins(t, dir => {
    const base = path.join(dir, 'base.img')
    qemuImgOk(['create', '-q', '-f', 'raw', base, '8M'])
    qemuIoOk(['write -P 1 0 8M'], base, ['-f', 'raw'])
    fs.copyFileSync(base, path.join(dir, 'modified.img'))
    qemuIoOk(['write -P 2 1M 100k', 'write -z 3M 1M', 'write -P 3 7M 512'], path.join(dir, 'modified.img'), ['-f', 'raw'])
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'modified.img', '-F', 'raw', 'diff.qcow2'], { cwd: dir })
  })
  runBoth(t, d, ['rebase', '-b', 'base.img', '-F', 'raw', 'diff.qcow2'])
  sameFiles(t, d, ['diff.qcow2'])
  t.same(mapOf(d.w, 'diff.qcow2'), mapOf(d.q, 'diff.qcow2'), 'same map')
  t.ok(rawOf(d.w, 'diff.qcow2').equals(fs.readFileSync(path.join(d.w, 'modified.img'))), 'base.img + diff.qcow2 = modified.img')
  checkClean(t, d.w, 'diff.qcow2')
})

t.test('header rewrite keeps the extensions qemu keeps, in its order', async t => {
  const d = twins(t, dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'data_file=a.data', '-b', 'old.raw', '-F', 'raw', '-u', 'a.qcow2', '1M'], { cwd: dir })
    // an extension qemu does not know, after the feature table
    const file = path.join(dir, 'a.qcow2')
    const buf = fs.readFileSync(file)
    let pos = 112
    const exts: Buffer[] = []
    while (buf.readUInt32BE(pos) !== 0) {
      const len = 8 + ((buf.readUInt32BE(pos + 4) + 7) & ~7)
      exts.push(buf.subarray(pos, pos + len))
      pos += len
    }
    const name = buf.subarray(Number(buf.readBigUInt64BE(8)), Number(buf.readBigUInt64BE(8)) + buf.readUInt32BE(16))
    const unknown = Buffer.from('12345678000000036162630000000000', 'hex')
    const blob = Buffer.concat([exts[0], unknown, ...exts.slice(1), Buffer.alloc(8)])
    buf.fill(0, 112, 4096)
    blob.copy(buf, 112)
    name.copy(buf, 112 + blob.length)
    buf.writeBigUInt64BE(BigInt(112 + blob.length), 8)
    fs.writeFileSync(file, buf)
  })
  for (const cmd of [['-u', '-b', 'other.raw', '-F', 'raw'], ['-u', '-b', ''], ['-u', '-b', 'x'.repeat(600), '-F', 'qcow2']]) {
    runBoth(t, d, ['rebase', ...cmd, 'a.qcow2'])
    sameFiles(t, d, ['a.qcow2'])
  }
})
