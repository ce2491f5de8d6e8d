// Writes through qimg's qcow2 driver into encrypted images (LUKS: host
// sector IVs, AES: guest sector IVs) read back right in qemu-img, and the
// images stay clean for qemu-img check.
import t from 'tap'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { openImage } from '../src/block/open.js'
import { SecretStore } from '../src/block/secrets.js'
import { makeLuksQcow2, qemuIoSecret, qemuRaw, qimgRaw } from './helpers/crypto.js'
import { qemuImgOk } from './helpers/run.js'

const SIZE = 4 << 20
const WRITES: Array<[number, number, number]> = [ // offset, length, byte
  [0, 512, 0x11],
  [1000, 3000, 0x22], // partial sectors at both ends
  [65536 * 3 - 100, 200, 0x33], // across a cluster boundary
  [1 << 20, 300000, 0x44],
  [SIZE - 700, 700, 0x55],
  [1000, 10, 0x66], // over earlier data
]

async function writeWithQimg (file: string, password: string): Promise<Buffer> {
  const secrets = new SecretStore()
  secrets.add('sec0', Buffer.from(password))
  // a model of what the guest should see: what qemu-io wrote first, then ours
  const model = Buffer.alloc(SIZE)
  Buffer.alloc(65536, 0x77).copy(model, 2 << 20)
  const img = await openImage(file, { secrets, options: { 'encrypt.key-secret': 'sec0' }, readOnly: false })
  try {
    for (const [off, len, byte] of WRITES) {
      const b = Buffer.alloc(len, byte)
      await img.write(b, off)
      b.copy(model, off)
    }
    await img.writeZeroes(2 << 20, 4096)
    model.fill(0, 2 << 20, (2 << 20) + 4096)
  } finally {
    await img.close()
  }
  return model
}

t.test('qimg writes into LUKS and AES qcow2 images read back in qemu', async t => {
  const dir = t.testdir()
  const images: Array<[string, string]> = []
  const l = path.join(dir, 'l.qcow2')
  makeLuksQcow2(l, '4M', 'pw')
  images.push([l, 'pw'])
  const c = path.join(dir, 'c.qcow2')
  makeLuksQcow2(c, '4M', 'pw', ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,cluster_size=4096')
  images.push([c, 'pw'])
  const a = path.join(dir, 'a.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', 'secret,id=sec0,data=aespw', '-o', 'encrypt.format=aes,encrypt.key-secret=sec0', a, '4M'])
  images.push([a, 'aespw'])
  for (const [f, pw] of images) {
    qemuIoSecret(f, pw, ['write -P 0x77 2M 64k'])
    const model = await writeWithQimg(f, pw)
    const theirs = qemuRaw(f, pw, f + '.raw')
    const bad = theirs.findIndex((v, i) => v !== model[i])
    t.equal(bad, -1, `qemu reads qimg's writes: ${path.basename(f)} (first difference at ${bad}: ${theirs[bad]} vs ${model[bad]})`)
    t.ok((await qimgRaw(f, pw)).equals(model), `qimg reads them too: ${path.basename(f)}`)
    execFileSync('qemu-img', ['check', '--object', `secret,id=sec0,data=${pw}`, '--image-opts', `driver=qcow2,file.filename=${f},encrypt.key-secret=sec0`])
  }
})
