// The standalone luks format: images from qemu read back through qimg,
// images and writes from qimg read back through qemu, info and failures
// match qemu-img.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { SecretStore } from '../src/block/secrets.js'
import { luksDriver, type LuksImage } from '../src/formats/luks/driver.js'
import { qemuImg, qemuImgOk } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'
import { qemuIoSecret, qemuRaw, qimgOpenError, qimgRaw, openReason } from './helpers/crypto.js'

function secrets (pw: string): SecretStore {
  const s = new SecretStore()
  s.add('sec0', Buffer.from(pw))
  s.add('sec1', Buffer.from(pw + '-second'))
  return s
}

t.test('qemu-made luks images read back; info and errors match', async t => {
  const dir = t.testdir()
  for (const [i, extra] of ['', ',cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1'].entries()) {
    const f = path.join(dir, `q${i}.luks`)
    qemuImgOk(['create', '-q', '-f', 'luks', '--object', 'secret,id=sec0,data=pw', '-o', `key-secret=sec0,iter-time=10${extra}`, f, '1M'])
    qemuIoSecret(f, 'pw', ['write -P 0x11 0 512', 'write -P 0x22 4096 70000', 'write -P 0x33 1047552 1024'], 'luks')
    const want = qemuRaw(f, 'pw', path.join(dir, `q${i}.raw`), 'luks')
    t.ok((await qimgRaw(f, 'pw', { 'key-secret': 'sec0' })).equals(want), `same data ${extra}`)
    for (const output of ['human', 'json']) sameAsQemu(t, ['info', `--output=${output}`, f], { cwd: dir })
  }
  const f = path.join(dir, 'q0.luks')
  for (const [pw, options] of [['bad', { 'key-secret': 'sec0' }], ['pw', {}], ['pw', { 'key-secret': 'sec0', foo: '1' }]] as const) {
    const opts = Object.entries(options).map(([k, v]) => `,${k}=${v}`).join('')
    const r = qemuImg(['convert', '-O', 'raw', '--object', `secret,id=sec0,data=${pw}`, '--image-opts', `driver=luks,file.filename=${f}${opts}`, path.join(dir, 'o.raw')])
    t.equal(await qimgOpenError(f, pw, { ...options }), openReason(r.stderr), `error ${opts}`)
  }
})

t.test('qimg-made luks images and qimg writes read back in qemu', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'm.luks')
  await luksDriver.create!(f, { 'key-secret': 'sec0', 'iter-time': '10', size: String(1 << 20), 'cipher-mode': 'cbc', 'ivgen-alg': 'essiv' }, { secrets: secrets('pw'), warn: () => undefined })
  sameAsQemu(t, ['info', f], { cwd: dir, name: 'info of a qimg-made image' })
  // aes-256-cbc: 32-byte key, slots 128 KiB apart from 4 KiB: payload at 4 KiB + 8 x 128 KiB
  t.equal(fs.statSync(f).size, 4096 + 8 * 131072 + (1 << 20))
  const img = await openImage(f, { secrets: secrets('pw'), options: { 'key-secret': 'sec0' }, readOnly: false, format: 'luks' }) as LuksImage
  await img.write(Buffer.alloc(3000, 0x41), 1000) // unaligned: read-modify-write of both end sectors
  await img.write(Buffer.alloc(65536, 0x42), 131072)
  await img.writeZeroes(500000, 10000)
  await img.amend({ state: 'active', 'new-secret': 'sec1', 'iter-time': '10' }, { force: false })
  await img.close()
  qemuIoSecret(f, 'pw', ['read -P 0x41 1000 3000', 'read -P 0x42 131072 64k', 'read -P 0 500000 10000'], 'luks')
  qemuIoSecret(f, 'pw-second', ['read -P 0x41 1000 3000'], 'luks')
  const r = qemuImg(['check', '--object', 'secret,id=sec0,data=pw', '--image-opts', `driver=luks,file.filename=${f},key-secret=sec0`])
  t.equal(r.stderr, 'qemu-img: This image format does not support checks\n')
})

t.test('serpent and twofish (qimg\'s own) interoperate; cast5 is refused in one line', async t => {
  const dir = t.testdir()
  for (const [i, extra] of [',cipher-alg=serpent-256', ',cipher-alg=twofish-128,cipher-mode=cbc,ivgen-alg=essiv', ',cipher-alg=serpent-128,cipher-mode=ctr'].entries()) {
    const f = path.join(dir, `own${i}.luks`)
    qemuImgOk(['create', '-q', '-f', 'luks', '--object', 'secret,id=sec0,data=pw', '-o', `key-secret=sec0,iter-time=10${extra}`, f, '256K'])
    qemuIoSecret(f, 'pw', ['write -P 0x11 0 4k', 'write -P 0x22 100000 3000'], 'luks')
    const want = qemuRaw(f, 'pw', path.join(dir, `own${i}.raw`), 'luks')
    t.ok((await qimgRaw(f, 'pw', { 'key-secret': 'sec0' })).equals(want), `qemu's image reads in qimg ${extra}`)
    // and the other way: qimg's own image and writes read in qemu
    const m = path.join(dir, `mine${i}.luks`)
    const values: Record<string, string> = { 'key-secret': 'sec0', 'iter-time': '10', size: String(256 << 10) }
    for (const kv of extra.slice(1).split(',')) { const [k, v] = kv.split('='); values[k] = v }
    await luksDriver.create!(m, values, { secrets: secrets('pw'), warn: () => undefined })
    const img = await openImage(m, { secrets: secrets('pw'), options: { 'key-secret': 'sec0' }, readOnly: false })
    await img.write(Buffer.alloc(5000, 0x5a), 777)
    await img.close()
    qemuIoSecret(m, 'pw', ['read -P 0x5a 777 5000'], 'luks')
  }
  const f = path.join(dir, 'cast5.luks')
  qemuImgOk(['create', '-q', '-f', 'luks', '--object', 'secret,id=sec0,data=pw', '-o', 'key-secret=sec0,iter-time=10,cipher-alg=cast5-128,cipher-mode=cbc', f, '1M'])
  sameAsQemu(t, ['info', '--output=json', f], { cwd: dir })
  t.equal(await qimgOpenError(f, 'pw', { 'key-secret': 'sec0' }), 'Cipher cast5-128 is not supported by qimg (Node\'s OpenSSL has no cast5)')
})

t.test('luks creation option errors are qemu-img\'s', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'e.luks')
  for (const opts of ['iter-time=10', 'key-secret=zz', 'key-secret=sec0,cipher-alg=foo', 'cipher-alg=foo', 'key-secret=sec0,iter-time=x',
    'key-secret=sec0,cipher-alg=des', 'key-secret=sec0,cipher-alg=cast5-128', 'key-secret=sec0,ivgen-alg=essiv,ivgen-hash-alg=sha1']) {
    const r = qemuImg(['create', '-q', '-f', 'luks', '--object', 'secret,id=sec0,data=pw', '-o', opts, f, '1M'])
    const values: Record<string, string> = { size: String(1 << 20) }
    for (const kv of opts.split(',')) { const [k, v] = kv.split('='); values[k] = v }
    let got = ''
    try {
      await luksDriver.create!(f, values, { secrets: secrets('pw'), warn: () => undefined })
    } catch (e) {
      got = (e as Error).message
    }
    t.equal(got, r.stderr.replace(/\n$/, '').replace(/^qemu-img: .*?e\.luks: /, ''), opts)
  }
})
