// Key slot amend (encrypt.state/keyslot/new-secret/old-secret/--force):
// the same requests give qemu-img's messages, and what qimg writes opens in
// qemu with exactly the secrets it should.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { openImage } from '../src/block/open.js'
import { SecretStore } from '../src/block/secrets.js'
import type { Qcow2Image } from '../src/formats/qcow2/driver.js'
import { amendQcow2Encryption } from '../src/crypto/qcow2-crypto.js'
import { qemuImg } from './helpers/run.js'
import { makeLuksQcow2 } from './helpers/crypto.js'

const SECRETS: Record<string, string> = { sec0: 'pw0', sec1: 'pw1', sec2: 'pw2' }
const OBJECTS = Object.entries(SECRETS).flatMap(([id, v]) => ['--object', `secret,id=${id},data=${v}`])

function secretStore (): SecretStore {
  const s = new SecretStore()
  for (const [id, v] of Object.entries(SECRETS)) s.add(id, Buffer.from(v))
  return s
}

/** qimg's amend through the driver layer; '' on success, else the message. */
async function qimgAmend (file: string, opts: string, force: boolean, key = 'sec0'): Promise<string> {
  const values: Record<string, string> = {}
  for (const kv of opts.split(',')) {
    const [k, v] = kv.split('=')
    values[k.replace(/^encrypt\./, '')] = v
  }
  let img: Qcow2Image | undefined
  try {
    img = await openImage(file, { secrets: secretStore(), options: { 'encrypt.key-secret': key }, readOnly: false }) as Qcow2Image
    await amendQcow2Encryption(img.shared.crypto, values, secretStore(), force)
    return ''
  } catch (e) {
    return (e as Error).message
  } finally {
    await img?.close()
  }
}

/** Which of the secrets open the image in qemu. */
function opensWith (file: string): string[] {
  return Object.keys(SECRETS).filter(id => qemuImg(['info', ...OBJECTS, '--image-opts',
    `driver=qcow2,file.filename=${file},encrypt.key-secret=${id}`]).code === 0 &&
    qemuImg(['convert', '-O', 'raw', ...OBJECTS, '--image-opts', `driver=qcow2,file.filename=${file},encrypt.key-secret=${id}`, file + '.raw']).code === 0)
}

function activeSlots (file: string): boolean[] {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' }))
  return info['format-specific'].data.encrypt.slots.map((s: { active: boolean }) => s.active)
}

t.test('amend requests give qemu-img\'s answers and results', async t => {
  const dir = t.testdir()
  const start = path.join(dir, 'start.qcow2')
  makeLuksQcow2(start, '1M', 'pw0')
  // a second slot (slot 3, pw1) to start from, added by qemu
  const r0 = qemuImg(['amend', ...OBJECTS, '--image-opts', `driver=qcow2,file.filename=${start},encrypt.key-secret=sec0`,
    '-o', 'encrypt.state=active,encrypt.keyslot=3,encrypt.new-secret=sec1,encrypt.iter-time=10'])
  t.equal(r0.code, 0, r0.stderr)
  const cases: Array<[string, boolean]> = [
    ['encrypt.keyslot=0', false],
    ['encrypt.state=foo', false],
    ['encrypt.state=active', false],
    ['encrypt.state=active,encrypt.old-secret=sec0,encrypt.new-secret=sec2', false],
    ['encrypt.state=active,encrypt.keyslot=0,encrypt.new-secret=sec2', false],
    ['encrypt.state=active,encrypt.keyslot=8,encrypt.new-secret=sec2', false],
    ['encrypt.state=active,encrypt.keyslot=-1,encrypt.new-secret=sec2', false],
    ['encrypt.state=active,encrypt.keyslot=x,encrypt.new-secret=sec2', false],
    ['encrypt.state=active,encrypt.new-secret=sec9', false],
    ['encrypt.state=active,encrypt.new-secret=sec2,encrypt.iter-time=10', false],
    ['encrypt.state=active,encrypt.keyslot=3,encrypt.new-secret=sec2,encrypt.iter-time=10', true],
    ['encrypt.state=inactive', false],
    ['encrypt.state=inactive,encrypt.new-secret=sec1', false],
    ['encrypt.state=inactive,encrypt.keyslot=5', false],
    ['encrypt.state=inactive,encrypt.keyslot=3,encrypt.old-secret=sec0', false],
    ['encrypt.state=inactive,encrypt.old-secret=sec2', false],
    ['encrypt.state=inactive,encrypt.old-secret=sec9', false],
    ['encrypt.state=inactive,encrypt.keyslot=3', false],
    ['encrypt.state=inactive,encrypt.old-secret=sec1', false],
  ]
  for (const [opts, force] of cases) {
    const a = path.join(dir, 'a.qcow2')
    const b = path.join(dir, 'b.qcow2')
    fs.copyFileSync(start, a)
    fs.copyFileSync(start, b)
    const r = qemuImg(['amend', ...OBJECTS, ...(force ? ['--force'] : []), '--image-opts',
      `driver=qcow2,file.filename=${a},encrypt.key-secret=sec0`, '-o', opts])
    const want = r.stderr.replace(/\n$/, '').replace(/^qemu-img: /, '')
    t.equal(await qimgAmend(b, opts, force), want, `${force ? '--force ' : ''}${opts}`)
    if (r.code === 0) {
      t.same(activeSlots(b), activeSlots(a), `slots after ${opts}`)
      t.same(opensWith(b), opensWith(a), `secrets that open after ${opts}`)
      execFileSync('qemu-img', ['check', ...OBJECTS, '--image-opts', `driver=qcow2,file.filename=${b},encrypt.key-secret=${opensWith(b)[0]}`])
    }
  }
})

t.test('erasing the last slots needs --force', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'f.qcow2')
  makeLuksQcow2(f, '1M', 'pw0')
  t.equal(await qimgAmend(f, 'encrypt.state=inactive,encrypt.keyslot=0', false),
    'Attempt to erase the only active keyslot 0 which will erase all the data in the image irreversibly - refusing operation')
  t.equal(await qimgAmend(f, 'encrypt.state=inactive,encrypt.old-secret=sec0', false),
    'All the active keyslots match the (old) password that was given and erasing them will erase all the data in the image irreversibly - refusing operation')
  t.equal(await qimgAmend(f, 'encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=10', false), '')
  t.equal(await qimgAmend(f, 'encrypt.state=inactive,encrypt.old-secret=sec0', false), '')
  t.same(opensWith(f), ['sec1'])
  t.equal(await qimgAmend(f, 'encrypt.state=inactive,encrypt.keyslot=1', true, 'sec1'), '')
  t.same(activeSlots(f), [false, false, false, false, false, false, false, false])
  t.same(opensWith(f), [])
})

t.test('amend on images that are not LUKS-encrypted', async t => {
  const dir = t.testdir()
  const a = path.join(dir, 'a.qcow2')
  const p = path.join(dir, 'p.qcow2')
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '--object', 'secret,id=sec0,data=pw0', '-o', 'encrypt.format=aes,encrypt.key-secret=sec0', a, '1M'])
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', p, '1M'])
  for (const f of [a, p]) {
    const r = qemuImg(['amend', ...OBJECTS, '--image-opts', `driver=qcow2,file.filename=${f},encrypt.key-secret=sec0`, '-o', 'encrypt.state=inactive,encrypt.keyslot=3'])
    t.equal(await qimgAmend(f, 'encrypt.state=inactive,encrypt.keyslot=3', false), r.stderr.replace(/\n$/, '').replace(/^qemu-img: /, ''), path.basename(f))
  }
})
