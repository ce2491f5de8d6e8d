// create -o encrypt.format=luks: the LUKS header comes from the crypto layer;
// the image around it is laid out as qemu-img lays it out and qemu reads and
// writes it with the key.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qimg, qemuImg, qemuIo } from './helpers/run.js'
import { holes } from './helpers/create-compare.js'

const SECRET = ['--object', 'secret,id=s0,data=pw']
const imageOpts = (f: string) => ['--image-opts', `driver=qcow2,encrypt.key-secret=s0,file.filename=${f}`]

/** Header fields and the first cluster minus the random LUKS area. */
function layoutOf (file: string): { fields: string, size: number } {
  const b = fs.readFileSync(file)
  return { fields: b.subarray(0, 0x100).toString('hex'), size: b.length }
}

t.test('LUKS-encrypted qcow2 images', async t => {
  const dir = t.testdir()
  for (const o of ['', ',preallocation=metadata', ',preallocation=falloc', ',cluster_size=4k', ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc']) {
    const opts = `encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10${o}`
    const ours = path.join(dir, 'o.qcow2')
    const theirs = path.join(dir, 'q.qcow2')
    const r = qimg(['create', '-q', '-f', 'qcow2', ...SECRET, '-o', opts, ours, '1M'])
    t.equal(r.code, 0, `created: ${opts} ${r.stderr}`)
    t.equal(qemuImg(['check', ...SECRET, ...imageOpts(ours)]).code, 0, `qemu-img check: ${opts}`)
    const io = qemuIo(['write -P 7 0 64k', 'read -P 7 0 64k'], imageOpts(ours)[1], [...SECRET, '--image-opts'])
    t.match(io.stdout, /read 65536\/65536/, `qemu-io reads back what it wrote: ${opts}`)
    // qemu's own LUKS creation can give up timing its PBKDF on a busy machine: try a few times
    let made = false
    for (let i = 0; i < 5 && !made; i++) made = qemuImg(['create', '-q', '-f', 'qcow2', ...SECRET, '-o', opts, theirs, '1M']).code === 0
    if (made) {
      fs.rmSync(ours)
      qimg(['create', '-q', '-f', 'qcow2', ...SECRET, '-o', opts, ours, '1M'])
      t.same(layoutOf(ours), layoutOf(theirs), `header and file size as qemu-img's: ${opts}`)
      t.equal(holes(ours), holes(theirs), `data/hole layout as qemu-img's: ${opts}`)
    }
    fs.rmSync(ours, { force: true })
    fs.rmSync(theirs, { force: true })
  }
})

t.test('measure: room for the LUKS header', async t => {
  for (const o of ['', ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc', ',cluster_size=4k']) {
    const args = ['measure', ...SECRET, '-O', 'qcow2', '-o', `encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10${o}`, '--size', '100M']
    const ours = qimg(args)
    // qemu times its PBKDF even here and can give up on a busy machine: take its first success
    let theirs = qemuImg(args)
    for (let i = 0; i < 5 && theirs.code !== 0; i++) theirs = qemuImg(args)
    if (theirs.code === 0) t.equal(ours.stdout, theirs.stdout, `measure ${o}`)
    t.equal(ours.code, 0)
  }
})
