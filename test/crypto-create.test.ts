// LUKS headers built by qimg are laid out as qemu lays them out, unlock in
// the real qemu-img, and data qimg encrypts reads right in qemu-io (what
// the qcow2 write path relies on). Creation option errors match qemu-img.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { createLuksHeader, luksLayout, type LuksCreateOptions } from '../src/crypto/luks/create.js'
import { decodeLuksHeader, LUKS_SLOT_DISABLED, LUKS_SLOT_ENABLED } from '../src/crypto/luks/header.js'
import { prepareQcow2Encryption, qcow2EncryptionAreaBytes } from '../src/crypto/qcow2-setup.js'
import { SecretStore } from '../src/block/secrets.js'
import { SectorCipher } from '../src/crypto/sector-cipher.js'
import { findCipher } from '../src/crypto/algorithms.js'
import { afMerge, afSplit } from '../src/crypto/luks/afsplit.js'
import { makeLuksQcow2, qemuIoSecret, qcow2CryptoArea, qcow2HostCluster } from './helpers/crypto.js'
import { qemuImg } from './helpers/run.js'

const combos: Array<[string, LuksCreateOptions]> = [
  ['', {}],
  [',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv', { cipherAlg: 'aes-128', cipherMode: 'cbc', ivgenAlg: 'essiv' }],
  [',encrypt.cipher-alg=aes-192,encrypt.cipher-mode=xts,encrypt.hash-alg=sha512', { cipherAlg: 'aes-192', cipherMode: 'xts', hashAlg: 'sha512' }],
  [',encrypt.cipher-mode=ctr,encrypt.ivgen-alg=plain,encrypt.ivgen-hash-alg=sha1,encrypt.hash-alg=sha1', { cipherMode: 'ctr', ivgenAlg: 'plain', ivgenHashAlg: 'sha1', hashAlg: 'sha1' }],
  [',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=ecb,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=md5', { cipherAlg: 'aes-128', cipherMode: 'ecb', ivgenAlg: 'essiv', ivgenHashAlg: 'md5' }],
]

t.test('qimg LUKS headers match qemu\'s layout and unlock in qemu; qimg-encrypted clusters read right', async t => {
  const dir = t.testdir()
  for (const [i, [extra, opts]] of combos.entries()) {
    const f = path.join(dir, `c${i}.qcow2`)
    makeLuksQcow2(f, '1M', 'qemu-pw', extra + ',cluster_size=16384')
    qemuIoSecret(f, 'qemu-pw', ['write -P 0x5a 0 48k'])
    const area = qcow2CryptoArea(f)
    const image = fs.readFileSync(f)
    const theirs = decodeLuksHeader(image.subarray(area.offset))

    const made = await createLuksHeader(Buffer.from('qimg-pw'), { ...opts, iterTime: 10 })
    const ours = made.header
    t.equal(made.area.length, area.length, `area length ${extra}`)
    for (const k of ['cipherName', 'cipherMode', 'hashSpec', 'payloadOffset', 'keyBytes'] as const) t.equal(ours[k], theirs[k], `${k} ${extra}`)
    t.same(ours.slots.map(s => [s.active, s.keyOffset, s.stripes]), theirs.slots.map(s => [s.active, s.keyOffset, s.stripes]), `slots ${extra}`)
    t.ok(ours.slots[0].iterations >= 1000 && ours.mkDigestIter >= 1000, 'iteration floors')
    t.match(ours.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)

    // put our header in, and re-encrypt the three data clusters with our master key at their host sectors
    made.area.copy(image, area.offset)
    for (let c = 0; c < 3; c++) {
      const host = qcow2HostCluster(f, c * 16384)
      const data = Buffer.alloc(16384, 0x30 + c)
      made.cipher.encrypt(data, host / 512)
      data.copy(image, host)
    }
    fs.writeFileSync(f, image)
    qemuIoSecret(f, 'qimg-pw', ['read -P 0x30 0 16k', 'read -P 0x31 16k 16k', 'read -P 0x32 32k 16k'])
  }
})

t.test('the AF splitter round-trips and the sector cipher inverts itself', async t => {
  for (const hash of ['sha1', 'sha256', 'sha512', 'md5', 'ripemd160'] as const) {
    const key = Buffer.from(Array.from({ length: 48 }, (_, i) => i * 7))
    t.ok(afMerge(afSplit(key, 50, hash), 48, 50, hash).equals(key), `afsplit ${hash}`)
  }
  for (const mode of ['xts', 'cbc', 'ctr', 'ecb'] as const) {
    for (const ivgen of ['plain', 'plain64', 'essiv'] as const) {
      const spec = { alg: findCipher('aes-128')!, mode, ivgen, ivgenHash: ivgen === 'essiv' ? 'sha256' as const : undefined }
      const c = new SectorCipher(spec, Buffer.alloc(mode === 'xts' ? 32 : 16, 9))
      const data = Buffer.from(Array.from({ length: 2048 }, (_, i) => i & 0xff))
      const enc = Buffer.from(data)
      c.encrypt(enc, 2 ** 33 + 5)
      t.notOk(enc.equals(data))
      c.decrypt(enc, 2 ** 33 + 5)
      t.ok(enc.equals(data), `${mode}-${ivgen}`)
    }
  }
  t.throws(() => new SectorCipher({ alg: findCipher('aes-128')!, mode: 'xts', ivgen: 'plain64' }, Buffer.alloc(32)).decrypt(Buffer.alloc(100), 0))
})

t.test('the standard layout for every key length', async t => {
  t.same(luksLayout(64), { slotOffsets: [8, 512, 1016, 1520, 2024, 2528, 3032, 3536], payloadOffset: 4040 })
  t.equal(luksLayout(16).payloadOffset, 8 + 8 * 128)
})

t.test('creation option errors are qemu-img\'s, in qemu-img\'s order', async t => {
  const dir = t.testdir()
  const secrets = new SecretStore()
  secrets.add('s', Buffer.from('pw'))
  const cases = [
    'encrypt.format=luks',
    'encrypt.format=luks,encrypt.key-secret=zz',
    'encrypt.format=luks,encrypt.cipher-alg=foo',
    'encrypt.format=luks,encrypt.key-secret=zz,encrypt.cipher-alg=des',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.cipher-alg=des',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.cipher-alg=des,encrypt.cipher-mode=foo',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.hash-alg=foo,encrypt.cipher-mode=foo',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha1',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha512',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.cipher-alg=cast5-128,encrypt.ivgen-alg=essiv',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.cipher-alg=cast5-128',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=x',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=-1',
    'encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=1000000000',
    'encrypt.format=aes,encrypt.key-secret=s,encrypt.cipher-alg=aes-128',
    'encrypt.format=aes,encrypt.key-secret=zz',
    'encrypt.format=aes,encrypt.iter-time=x',
    'encrypt.format=foo',
    'encryption=on',
    'encryption=on,encrypt.format=luks,encrypt.key-secret=s',
    'encryption=off,encrypt.key-secret=s',
    'encrypt.key-secret=s',
  ]
  for (const opts of cases) {
    const r = qemuImg(['create', '-q', '-f', 'qcow2', '--object', 'secret,id=s,data=pw', '-o', opts, path.join(dir, 'e.qcow2'), '1M'])
    const want = r.stderr.trim().replace(/^qemu-img: .*?e\.qcow2: /, '').replace(/PBKDF iterations \d+/, 'PBKDF iterations N')
    const values: Record<string, string> = {}
    for (const kv of opts.split(',')) { const [k, v] = kv.split('='); values[k] = v }
    let got = ''
    try {
      await prepareQcow2Encryption(values, secrets)
    } catch (e) {
      got = (e as Error).message.replace(/PBKDF iterations \d+/, 'PBKDF iterations N')
    }
    t.equal(got, want, opts)
  }
})

t.test('a header names only what it holds', async t => {
  const made = await createLuksHeader(Buffer.from('x'), { iterTime: 10, cipherAlg: 'aes-128', cipherMode: 'cbc', ivgenAlg: 'essiv', hashAlg: 'sha1' })
  t.equal(made.header.cipherMode, 'cbc-essiv:sha256')
  t.equal(made.header.slots.filter(s => s.active === LUKS_SLOT_ENABLED).length, 1)
  t.equal(made.header.slots.filter(s => s.active === LUKS_SLOT_DISABLED).length, 7)
  await t.rejects(createLuksHeader(Buffer.from('x'), { cipherAlg: 'cast5-128', cipherMode: 'cbc', iterTime: 10 }), /cast5-128 is not supported by qimg/)
})

t.test('measure: the LUKS area qemu-img measure counts', async t => {
  const secrets = new SecretStore()
  secrets.add('sec0', Buffer.from('pw'))
  const required = (o: string[]): number => Number(/required size: (\d+)/.exec(qemuImg(['measure', '--object', 'secret,id=sec0,data=pw', '-O', 'qcow2', ...o, '--size', '1G']).stdout)![1])
  const plain = required([])
  for (const extra of ['', ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc', ',encrypt.cipher-alg=aes-192']) {
    const opts = `encrypt.format=luks,encrypt.key-secret=sec0${extra}`
    const values = Object.fromEntries(opts.split(',').map(kv => kv.split('=') as [string, string]))
    const area = qcow2EncryptionAreaBytes(values, secrets)
    t.equal(plain + Math.ceil(area / 65536) * 65536, required(['-o', opts]), opts)
  }
  t.equal(qcow2EncryptionAreaBytes({ 'encrypt.format': 'aes', 'encrypt.key-secret': 'sec0' }, secrets), 0)
  t.equal(qcow2EncryptionAreaBytes({}, secrets), 0)
})

t.test('twofish known answers (zero key and block)', async t => {
  const { Twofish } = await import('../src/crypto/ciphers/twofish.js')
  for (const [keyLen, want] of [[16, '9f589f5cf6122c32b6bfec2f2ae8c35a'], [32, '57ff739d4dc92c1bd7fc01700cc8216f']] as const) {
    const b = Buffer.alloc(16)
    const c = new Twofish(Buffer.alloc(keyLen))
    c.encrypt(b)
    t.equal(b.toString('hex'), want)
    c.decrypt(b)
    t.ok(b.equals(Buffer.alloc(16)))
  }
})

t.test('serpent\'s generated bitsliced S-boxes agree with the specification\'s tables', async t => {
  const { SBOX } = await import('../src/crypto/ciphers/serpent.js')
  const { SBOXES, INVERSE_SBOXES } = await import('../src/crypto/ciphers/serpent-sboxes.js')
  const apply = (f: (x: Uint32Array) => void, v: number): number => {
    // put input v in bit lane 5 of the words, then read the output lane back
    const x = new Uint32Array([0, 1, 2, 3].map(i => ((v >> i) & 1) << 5))
    f(x)
    return [0, 1, 2, 3].reduce((o, i) => o | (((x[i] >>> 5) & 1) << i), 0)
  }
  for (let s = 0; s < 8; s++) {
    t.same(Array.from({ length: 16 }, (_, v) => apply(SBOXES[s], v)), SBOX[s], `S${s}`)
    t.same(Array.from({ length: 16 }, (_, v) => apply(INVERSE_SBOXES[s], SBOX[s][v])), Array.from({ length: 16 }, (_, v) => v), `S${s} inverse`)
  }
})
