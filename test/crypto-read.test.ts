// Encrypted qcow2 images made and written by the real qemu-img/qemu-io read
// back through qimg byte for byte; info and failures match qemu-img.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { qemuImg, qemuImgOk } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'
import {
  makeLuksQcow2, qemuIoSecret, qemuRaw, qimgOpenError, qimgRaw, openReason,
} from './helpers/crypto.js'

const WRITES = ['write -P 0x11 0 512', 'write -P 0x22 65536 1536', 'write -P 0x33 300000 100000', 'write -P 0x44 1048064 512']

t.test('LUKS qcow2 images of several cipher setups read back as qemu reads them', async t => {
  const dir = t.testdir()
  const combos = [
    '', // aes-256-xts-plain64, sha256
    ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv',
    ',encrypt.cipher-mode=ctr,encrypt.hash-alg=sha1,extended_l2=on', // subclusters
    ',encrypt.cipher-mode=ecb,encrypt.ivgen-alg=plain,encrypt.hash-alg=sha512',
    ',encrypt.cipher-alg=aes-192,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=md5,encrypt.hash-alg=ripemd160',
  ]
  for (const [i, extra] of combos.entries()) {
    const f = path.join(dir, `l${i}.qcow2`)
    // small clusters for some, so a write spans several clusters
    makeLuksQcow2(f, '1M', 'pw' + i, extra + (i % 2 ? ',cluster_size=4096' : ''))
    qemuIoSecret(f, 'pw' + i, WRITES)
    const want = qemuRaw(f, 'pw' + i, path.join(dir, `l${i}.raw`))
    const got = await qimgRaw(f, 'pw' + i)
    t.ok(got.equals(want), `same data: ${extra || 'defaults'}`)
    for (const output of ['human', 'json']) sameAsQemu(t, ['info', `--output=${output}`, f], { cwd: dir })
  }
})

t.test('legacy AES qcow2: key is the secret\'s first 16 bytes, IV the guest sector', async t => {
  const dir = t.testdir()
  for (const [i, pw] of ['short', '0123456789abcdefLONGER', ''].entries()) {
    const f = path.join(dir, `a${i}.qcow2`)
    const opt = i === 1 ? 'encryption=on' : 'encrypt.format=aes'
    qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', `secret,id=sec0,data=${pw}`, '-o', `${opt},encrypt.key-secret=sec0`, f, '1M'])
    qemuIoSecret(f, pw, WRITES)
    const want = qemuRaw(f, pw, path.join(dir, `a${i}.raw`))
    t.ok((await qimgRaw(f, pw)).equals(want), `same data with password '${pw}'`)
    for (const output of ['human', 'json']) sameAsQemu(t, ['info', `--output=${output}`, f], { cwd: dir })
  }
})

t.test('a LUKS qcow2 with a backing file and an external data file', async t => {
  const dir = t.testdir()
  const base = path.join(dir, 'base.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', base, '1M'])
  execFileSync('qemu-io', ['-c', 'write -P 0x77 0 1M', base])
  const top = path.join(dir, 'top.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', 'secret,id=sec0,data=pw', '-o',
    `encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,data_file=${path.join(dir, 'top.data')},backing_file=base.qcow2,backing_fmt=qcow2`, top, '1M'])
  // guest cluster 0 lives at host offset 0 of the data file
  qemuIoSecret(top, 'pw', ['write -P 0x55 4096 8192', 'write -P 0x66 700000 70000'])
  const want = qemuRaw(top, 'pw', path.join(dir, 'top.raw'))
  t.ok((await qimgRaw(top, 'pw')).equals(want), 'data file clusters decrypt with their host offsets')
})

t.test('missing, unknown and wrong secrets fail as in qemu-img', async t => {
  const dir = t.testdir()
  const l = path.join(dir, 'l.qcow2')
  const a = path.join(dir, 'a.qcow2')
  const p = path.join(dir, 'p.qcow2')
  makeLuksQcow2(l, '1M', 'right')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', 'secret,id=sec0,data=x', '-o', 'encrypt.format=aes,encrypt.key-secret=sec0', a, '1M'])
  qemuImgOk(['create', '-q', '-f', 'qcow2', p, '1M'])
  const cases: Array<[string, string | undefined, Record<string, string>]> = [
    [l, 'wrong', { 'encrypt.key-secret': 'sec0' }],
    [l, undefined, {}],
    [l, 'right', { 'encrypt.key-secret': 'sec1' }],
    [l, 'right', { 'encrypt.key-secret': 'sec0', 'encrypt.format': 'aes' }],
    [l, 'right', { 'encrypt.key-secret': 'sec0', 'encrypt.foo': '1' }],
    [l, 'right', { 'encrypt.key-secret': 'sec0', 'encrypt.iter-time': '5' }],
    [a, undefined, {}],
    [a, 'x', { 'encrypt.key-secret': 'sec0', 'encrypt.format': 'luks' }],
    [a, 'x', { 'encrypt.key-secret': 'sec0', 'encrypt.format': 'foo', 'encrypt.foo': '1' }],
    [p, undefined, { 'encrypt.format': 'aes' }],
  ]
  for (const [file, pw, options] of cases) {
    const opts = Object.entries(options).map(([k, v]) => `,${k}=${v}`).join('')
    const r = qemuImg(['convert', '-O', 'raw', ...(pw !== undefined ? ['--object', `secret,id=sec0,data=${pw}`] : []),
      '--image-opts', `driver=qcow2,file.filename=${file}${opts}`, path.join(dir, 'out.raw')])
    t.equal(r.code, 1, `qemu-img fails: ${path.basename(file)}${opts}`)
    t.equal(await qimgOpenError(file, pw, options), openReason(r.stderr), `same message: ${path.basename(file)}${opts}`)
  }
  // an unencrypted image ignores a key secret
  t.equal(await qimgOpenError(p, 'x', { 'encrypt.key-secret': 'sec0', 'encrypt.foo': '1' }), '')
})
