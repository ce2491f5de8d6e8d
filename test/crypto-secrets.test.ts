// --object secret as qemu reads it: base64 with glib's leniency, secrets
// encrypted under another secret (keyid/iv, as libvirt passes them), and
// passwords that must be UTF-8 text.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { createCipheriv, randomBytes } from 'node:crypto'
import { SecretStore } from '../src/block/secrets.js'
import { qemuImg } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'
import { makeLuksQcow2, qimgOpenError, openReason } from './helpers/crypto.js'

function encrypt (key: Buffer, iv: Buffer, text: Buffer): string {
  const c = createCipheriv('aes-256-cbc', key, iv)
  return Buffer.concat([c.update(text), c.final()]).toString('base64')
}

t.test('secret objects: errors match qemu-img, in its order', async t => {
  const dir = t.testdir()
  const key = randomBytes(32)
  fs.writeFileSync(path.join(dir, 'master.key'), key)
  fs.writeFileSync(path.join(dir, 'short.key'), 'short')
  fs.writeFileSync(path.join(dir, 'img.raw'), Buffer.alloc(4096))
  const iv = Buffer.alloc(16, 7).toString('base64')
  const ct = encrypt(key, Buffer.alloc(16, 7), Buffer.from('abc'))
  // a last byte of 20 after decryption: not valid padding
  const badPad = createCipheriv('aes-256-cbc', key, Buffer.alloc(16, 7)).setAutoPadding(false).update(Buffer.alloc(16, 20)).toString('base64')
  const master = 'secret,id=master,file=master.key'
  const cases: string[][] = [
    ['secret,id=s,data=@@@,format=base64'],
    ['secret,id=s,data=YWJj=,format=base64'],
    ['secret,id=s,data=x,format=foo'],
    ['secret,id=s,data=x,file=master.key'],
    ['secret,id=s'],
    [`secret,id=s,data=${ct},keyid=nomaster,format=base64`],
    ['secret,id=master,file=short.key', `secret,id=s,data=${ct},keyid=master,format=base64`],
    [master, `secret,id=s,data=${ct},keyid=master,format=base64`],
    [master, `secret,id=s,data=@@@,keyid=master,iv=AAAA,format=base64`],
    [master, `secret,id=s,data=@@@,keyid=master,iv=${iv},format=base64`],
    [master, `secret,id=s,data=YWJj,keyid=master,iv=${iv},format=base64`],
    [master, `secret,id=s,data=${ct},keyid=master,iv=${iv}`],
    [master, `secret,id=s,data=${badPad},keyid=master,iv=${iv},format=base64`],
    [master, `secret,id=s,data=${ct},keyid=master,iv=${iv},format=base64`],
  ]
  for (const objs of cases) sameAsQemu(t, ['info', ...objs.flatMap(o => ['--object', o]), 'img.raw'], { cwd: dir })
})

t.test('decoding and decryption', async t => {
  const key = randomBytes(32)
  const iv = randomBytes(16)
  const s = new SecretStore()
  s.add('master', key)
  // ids must be unique within one store (qemu refuses duplicate object ids)
  let n = 0
  for (const text of ['', 'abc', 'exactly sixteen!', 'a longer passphrase with ünïcödé']) {
    const id = `x${n++}`
    s.addFromProperties({ id, data: encrypt(key, iv, Buffer.from(text)), keyid: 'master', iv: iv.toString('base64'), format: 'base64' })
    t.equal(s.get(id).toString(), text)
  }
  for (const [b64, want] of [['YWJj', 'abc'], ['YWJjZA', 'abc'], ['YWJjZA==', 'abcd'], ['YWI=', 'ab'], ['YWJj==', 'abc'], ['', '']]) {
    const id = `y${n++}`
    s.addFromProperties({ id, data: b64, format: 'base64' })
    t.equal(s.get(id).toString(), want, b64)
  }
})

t.test('passwords must be UTF-8 text', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'l.qcow2')
  makeLuksQcow2(f, '1M', 'pw')
  fs.writeFileSync(path.join(dir, 'bin.pw'), Buffer.from([0x61, 0xff, 0x62]))
  fs.writeFileSync(path.join(dir, 'nul.pw'), Buffer.from([0x61, 0, 0x62]))
  for (const file of ['bin.pw', 'nul.pw']) {
    const r = qemuImg(['convert', '-O', 'raw', '--object', `secret,id=sec0,file=${file}`, '--image-opts',
      `driver=qcow2,file.filename=${f},encrypt.key-secret=sec0`, 'out.raw'], { cwd: dir })
    const s = new SecretStore()
    s.add('sec0', fs.readFileSync(path.join(dir, file)))
    const { openImage } = await import('../src/block/open.js')
    const got = await openImage(f, { secrets: s, options: { 'encrypt.key-secret': 'sec0' } }).then(async i => { await i.close(); return '' }, (e: Error) => e.message)
    t.equal(got, openReason(r.stderr), file)
  }
  t.equal(await qimgOpenError(f, 'pw', { 'encrypt.key-secret': 'sec0' }), '')
})
