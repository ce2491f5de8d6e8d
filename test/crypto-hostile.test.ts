// Damaged LUKS headers and crypto header extensions: qimg refuses them with
// qemu-img's messages, in qemu-img's order, and never crashes.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImg } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'
import { makeLuksQcow2, qimgOpenError, openReason } from './helpers/crypto.js'

function str (s: string, len = 32): string {
  return Buffer.concat([Buffer.from(s), Buffer.alloc(len - s.length)]).toString('hex')
}

// [offset inside the LUKS header, hex bytes] — offsets from the LUKS1 layout
const LUKS_PATCHES: Array<Array<[number, string]>> = [
  [[0, '4c554b53babf']],
  [[6, '0002']],
  [[8, str('foo')]],
  [[8, str('foo')], [72, str('baz')]],
  [[8, str('foo')], [40, str('bar-plain64')]],
  [[40, str('xts')]],
  [[40, str('xts-')]],
  [[40, str('-plain64')]],
  [[40, str('xts-foo')], [72, str('baz')]],
  [[40, str('xts-foo:bar')]],
  [[40, str('xts-essiv')]],
  [[40, str('xts-essiv:foo')], [72, str('baz')]],
  [[40, str('cbc-essiv:sha512')]],
  [[40, str('ctr-plain')], [108, '00000015']],
  [[108, '00000015']],
  [[108, '00000000']],
  [[104, '00000007']],
  [[104, '00000008']],
  [[164, '00000000']],
  [[164, '00000000'], [0xfc, '00000f9f']],
  [[0xfc, '00000001'], [0xd0, '12345678']],
  [[0xd0, '12345678'], [0xf8, '00000000']],
  [[0xd4, '00000000']],
  [[0x100, '00ac71f3']],
  [[0xf8, '00000007']],
  [[0x128, '00000008'], [0x24c, '00000001']],
  [[0x220, '12345678'], [0x248, '00000000']],
  [[0x104, '00000000']], // an inactive slot's iterations do not matter
]

/** Write `image` with `patches` applied as `name`; info and opening must fail (or not) as in qemu. */
async function sameOnDamaged (t: Test, dir: string, image: Buffer, patches: Array<[number, string]>, base: number, name: string): Promise<void> {
  const bad = Buffer.from(image)
  for (const [off, hex] of patches) Buffer.from(hex, 'hex').copy(bad, base + off)
  const f = path.join(dir, `${name}.qcow2`)
  fs.writeFileSync(f, bad)
  const what = patches.map(([o, h]) => `${o.toString(16)}:${h.replace(/(00)+$/, '')}`).join(' ')
  sameAsQemu(t, ['info', f], { cwd: dir, name: `info ${what}` })
  const r = qemuImg(['convert', '-O', 'raw', '--object', 'secret,id=sec0,data=pw', '--image-opts',
    `driver=qcow2,file.filename=${f},encrypt.key-secret=sec0`, path.join(dir, 'out.raw')])
  t.equal(await qimgOpenError(f, 'pw', { 'encrypt.key-secret': 'sec0' }), r.code === 0 ? '' : openReason(r.stderr), `open ${what}`)
}

t.test('damaged LUKS headers inside qcow2', async t => {
  const dir = t.testdir()
  const good = path.join(dir, 'good.qcow2')
  makeLuksQcow2(good, '1M', 'pw')
  const image = fs.readFileSync(good)
  const area = 0x40000
  for (const [i, patches] of LUKS_PATCHES.entries()) await sameOnDamaged(t, dir, image, patches, area, `bad${i}`)
})

t.test('damaged crypto header extensions', async t => {
  const dir = t.testdir()
  const good = path.join(dir, 'good.qcow2')
  makeLuksQcow2(good, '1M', 'pw')
  const image = fs.readFileSync(good)
  // the extension sits right after the 112-byte header: type at 0x70, length 0x74, offset 0x78, size 0x80
  const cases: Array<Array<[number, string]>> = [
    [[0x78, '0000000000040200']],
    [[0x78, '0000000010000000']],
    [[0x78, '0000000000000000']],
    [[0x80, '0000000000001000']],
    [[0x80, '0000000000000100']],
    [[0x80, '00000000001f8e00']],
    [[0x74, '00000008']],
    [[0x74, '00000008'], [0x78, '0000000000040200']],
    [[0x20, '00000001']],
    [[0x20, '00000001'], [0x74, '00000008']],
  ]
  for (const [i, patches] of cases.entries()) await sameOnDamaged(t, dir, image, patches, 0, `ext${i}`)
  // no extension at all: qemu 7.2's info crashes; opening for I/O names the problem
  const bad = Buffer.from(image)
  bad.writeUInt32BE(0, 0x70)
  const f = path.join(dir, 'noext.qcow2')
  fs.writeFileSync(f, bad)
  t.equal(await qimgOpenError(f, 'pw', { 'encrypt.key-secret': 'sec0' }), 'Missing CRYPTO header for crypt method 2')
})
