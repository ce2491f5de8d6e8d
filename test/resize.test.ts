// `resize` against the real qemu-img: the same command on identical copies
// must print the same, exit the same, and leave images that qemu-img
// describes the same way, with the same contents, passing qemu-img check.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qimg, qemuImg, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { qemuCheck } from './helpers/write-model.js'

type Fixture = (dir: string) => void

const fixtures: Record<string, Fixture> = {
  qcow2: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'img'), '1M'])
    qemuIoOk(['write -P 1 0 300k', 'write -P 2 700k 324k'], path.join(dir, 'img'))
  },
  small512: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512,refcount_bits=1', path.join(dir, 'img'), '64k'])
    qemuIoOk(['write -P 3 0 64k'], path.join(dir, 'img'))
  },
  v2: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', path.join(dir, 'img'), '1M'])
    qemuIoOk(['write -P 4 100k 800k'], path.join(dir, 'img'))
  },
  extl2: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', path.join(dir, 'img'), '1M'])
    qemuIoOk(['write -P 5 10k 20k', 'write -P 6 600k 200k'], path.join(dir, 'img'))
  },
  backing: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'base'), '2M'])
    qemuIoOk(['write -P 7 0 2M'], path.join(dir, 'base'))
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-b', 'base', '-F', 'qcow2', path.join(dir, 'img'), '1M'])
    qemuIoOk(['write -P 8 64k 64k'], path.join(dir, 'img'))
  },
  v2backing: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'base'), '2M'])
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'base', '-F', 'qcow2', path.join(dir, 'img'), '1M'])
  },
  snapshot: dir => {
    qemuImgOk(['create', '-q', '-f', 'qcow2', path.join(dir, 'img'), '1M'])
    qemuIoOk(['write -P 9 0 1M'], path.join(dir, 'img'))
    qemuImgOk(['snapshot', '-c', 's1', path.join(dir, 'img')])
    qemuIoOk(['write -P 10 512k 64k'], path.join(dir, 'img'))
  },
  raw: dir => {
    fs.writeFileSync(path.join(dir, 'img'), Buffer.alloc(1001, 0x11))
  },
}

const cases: Array<[string, string[]]> = [
  ['qcow2', ['img', '+1M']],
  ['qcow2', ['img', '-512k']],
  ['qcow2', ['--shrink', 'img', '-512k']],
  ['qcow2', ['--shrink', 'img', '320k']],
  ['qcow2', ['-q', 'img', '10G']],
  ['qcow2', ['-f', 'qcow2', 'img', '1T']],
  ['qcow2', ['img', '1E']],
  ['qcow2', ['img', '8E']],
  ['qcow2', ['img', '16E']],
  ['qcow2', ['img', '+abc']],
  ['qcow2', ['img', '0']],
  ['qcow2', ['img', '--', '-10M']],
  ['qcow2', ['img']],
  ['qcow2', ['img', '2M', '--shrink']],
  ['qcow2', ['--preallocation=foo', 'img', '5M']],
  ['qcow2', ['--preallocation=metadata', 'img', '5M']],
  ['qcow2', ['--preallocation=falloc', 'img', '3M']],
  ['qcow2', ['--preallocation=full', 'img', '3M']],
  ['qcow2', ['--preallocation=full', '--shrink', 'img', '512k']],
  ['qcow2', ['img', '1000000']],
  ['qcow2', ['--shrink', 'img', '999999']],
  ['qcow2', ['--image-opts', 'driver=qcow2,file.filename=img', '2M']],
  ['qcow2', ['--image-opts', '-f', 'qcow2', 'driver=qcow2,file.filename=img', '2M']],
  ['qcow2', ['--object', 'secret,id=s0,data=x', 'img', '2M']],
  ['qcow2', ['-f', 'raw', 'missing', '1M']],
  ['small512', ['img', '100M']],
  ['small512', ['--shrink', 'img', '10k']],
  ['v2', ['--shrink', 'img', '512k']],
  ['v2', ['img', '+3M']],
  ['extl2', ['--shrink', 'img', '256k']],
  ['extl2', ['--preallocation=metadata', 'img', '2M']],
  ['backing', ['img', '2M']],
  ['backing', ['img', '3M']],
  ['v2backing', ['img', '2M']],
  ['snapshot', ['--shrink', 'img', '256k']],
  ['snapshot', ['img', '4M']],
  ['raw', ['-f', 'raw', 'img', '+1']],
  ['raw', ['-f', 'raw', 'img', '1000']],
  ['raw', ['-f', 'raw', '--shrink', 'img', '1000']],
  ['raw', ['img', '4k']],
  ['raw', ['-f', 'raw', '--preallocation=metadata', 'img', '4M']],
  ['raw', ['-f', 'raw', '--preallocation=falloc', 'img', '4M']],
  ['raw', ['-f', 'raw', '--preallocation=full', 'img', '4M']],
  ['raw', ['--image-opts', 'driver=raw,file.filename=img,size=512', '4096']],
  ['raw', ['--image-opts', 'driver=raw,file.filename=img,offset=512', '4096']],
]

/** info without the host-dependent disk usage */
function describe (dir: string, fmt: string): string {
  const r = qemuImg(['info', '-U', '-f', fmt, '--output=json', 'img'], { cwd: dir })
  return r.stdout.replace(/\n\s*"actual-size": \d+,/, '')
}

for (const [fixture, args] of cases) {
  t.test(`resize ${args.join(' ')} (${fixture})`, async t => {
    const root = t.testdir({ a: {}, b: {} })
    const a = path.join(root, 'a')
    const b = path.join(root, 'b')
    fixtures[fixture](a)
    for (const f of fs.readdirSync(a)) fs.copyFileSync(path.join(a, f), path.join(b, f))
    const ours = qimg(['resize', ...args], { cwd: a })
    const theirs = qemuImg(['resize', ...args], { cwd: b })
    t.equal(ours.stdout, theirs.stdout, 'stdout')
    t.equal(ours.stderr, theirs.stderr, 'stderr')
    t.equal(ours.code, theirs.code, 'exit code')
    const fmt = fixture === 'raw' ? 'raw' : 'qcow2'
    t.equal(describe(a, fmt), describe(b, fmt), 'qemu-img info')
    if (fmt === 'qcow2') {
      const check = qemuCheck(path.join(a, 'img'))
      t.same([check.corruptions, check.leaks, check.checkErrors], [0, 0, 0], `qemu-img check: ${check.raw}`)
    }
    const same = qemuImg(['compare', '-U', '-f', fmt, '-F', fmt, path.join(a, 'img'), path.join(b, 'img')])
    t.equal(same.code, 0, `same contents: ${same.stdout}${same.stderr}`)
  })
}
