// partitions/N.raw of a compressed qcow2: each equals its byte range of the
// disk (offsets from sfdisk), and an ext4 file system inside an MBR or GPT
// partition loop-mounts read-only from the FUSE file, its files intact.
import t from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { qemuImgOk } from './helpers/run.js'
import { mountImage, qimgCli, sh } from './helpers/mount.js'
import { qcow2Driver } from '../src/formats/qcow2/driver.js'

/** qcow2 creation is another part of qimg: without it the overlay is made as qimg would, by qemu-img */
const qcow2Create = typeof qcow2Driver.create === 'function'

function makeTree (dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>([
    ['hello.txt', Buffer.from('hello from inside a partition\n')],
    ['sub/noise.bin', crypto.randomBytes(3 << 20)],
    ['sub/deeper/zeros.bin', Buffer.alloc(1 << 20)],
  ])
  for (const [name, data] of files) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    fs.writeFileSync(path.join(dir, name), data)
  }
  return files
}

interface Part { number: number, start: number, size: number }

function partitionDisk (file: string, script: string): Part[] {
  fs.writeFileSync(file, Buffer.alloc(0))
  fs.truncateSync(file, 48 << 20)
  const r = sh('sfdisk', ['-q', file], { input: script })
  if (r.code !== 0) throw new Error(r.stderr)
  return JSON.parse(sh('sfdisk', ['-J', file]).stdout).partitiontable.partitions.map((p: { node: string, start: number, size: number }) => ({
    number: Number(/(\d+)$/.exec(p.node)![1]), start: p.start * 512, size: p.size * 512,
  }))
}

const TABLES: Array<[string, string, number[]]> = [
  ['MBR', 'label: dos\n,24M,83\n,,5\n,4M,83\n,,83\n', [1, 2, 5, 6]],
  ['GPT', 'label: gpt\nsize=24M, type=L, name=data\nsize=4M\ntype=L\n', [1, 2, 3]],
]

for (const [label, script, numbers] of TABLES) {
  t.test(`ext4 in partition 1 of a compressed qcow2 with a ${label} table`, async t => {
    const dir = t.testdir()
    const rawDisk = path.join(dir, 'disk.raw')
    const parts = partitionDisk(rawDisk, script)
    const files = makeTree(path.join(dir, 'tree'))
    const fsPart = parts[0]
    const mk = sh('mkfs.ext4', ['-q', '-F', '-E', `offset=${fsPart.start}`, '-d', path.join(dir, 'tree'), rawDisk, `${fsPart.size / 1024}k`])
    t.equal(mk.code, 0, mk.stderr)
    // something recognisable in the other partitions
    for (const p of parts.slice(1)) {
      const fill = Buffer.alloc(Math.min(p.size, 1 << 20), p.number)
      const fd = fs.openSync(rawDisk, 'r+')
      fs.writeSync(fd, fill, 0, fill.length, p.start + (p.size > 4096 ? 4096 : 0))
      fs.closeSync(fd)
    }
    const img = path.join(dir, 'disk.qcow2')
    qemuImgOk(['convert', '-c', '-O', 'qcow2', rawDisk, img])
    const mp = mountImage(t, [img])
    t.same(fs.readdirSync(path.join(mp, 'partitions')).map(n => Number(n.slice(0, -4))).sort((a, b) => a - b), numbers)
    for (const p of parts) {
      const file = path.join(mp, `partitions/${p.number}.raw`)
      t.equal(fs.statSync(file).size, p.size, `partition ${p.number} size`)
      const cmp = sh('cmp', [`--ignore-initial=0:${p.start}`, `--bytes=${p.size}`, file, rawDisk])
      t.equal(cmp.code, 0, `partition ${p.number} bytes ${cmp.stdout}${cmp.stderr}`)
    }

    const loopDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-loop-'))
    const lm = sh('mount', ['-t', 'ext4', '-o', 'loop,ro', path.join(mp, 'partitions/1.raw'), loopDir])
    t.equal(lm.code, 0, `loop mount: ${lm.stderr}`)
    try {
      for (const [name, data] of files) {
        const r = sh('sha256sum', [path.join(loopDir, name)])
        t.equal(r.stdout.split(' ')[0], crypto.createHash('sha256').update(data).digest('hex'), `${name} reads back`)
      }
    } finally {
      sh('umount', [loopDir])
      if (sh('mountpoint', ['-q', loopDir]).code === 0) sh('umount', ['-l', loopDir])
      fs.rmdirSync(loopDir)
    }
  })
}

t.test('ext4 mounted read-write from a partition, through an --overlay', async t => {
  const dir = t.testdir()
  const rawDisk = path.join(dir, 'disk.raw')
  const [part] = partitionDisk(rawDisk, 'label: gpt\nsize=24M, type=L\n')
  t.equal(sh('mkfs.ext4', ['-q', '-F', '-E', `offset=${part.start}`, rawDisk, `${part.size / 1024}k`]).code, 0)
  const base = path.join(dir, 'disk.qcow2')
  qemuImgOk(['convert', '-c', '-O', 'qcow2', rawDisk, base])
  const baseBytes = fs.readFileSync(base)
  const overlay = path.join(dir, 'over.qcow2')
  if (!qcow2Create) qemuImgOk(['create', '-f', 'qcow2', '-b', fs.realpathSync(base), '-F', 'qcow2', overlay])
  const mp = mountImage(t, ['--overlay', overlay, base])
  const files = new Map([['a.bin', crypto.randomBytes(5 << 20)], ['b.txt', Buffer.from('written through FUSE\n')]])
  const loopDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-loop-'))
  const lm = sh('mount', ['-t', 'ext4', '-o', 'loop', path.join(mp, 'partitions/1.raw'), loopDir])
  t.equal(lm.code, 0, `loop mount read-write: ${lm.stderr}`)
  try {
    for (const [name, data] of files) fs.writeFileSync(path.join(loopDir, name), data)
  } finally {
    t.equal(sh('umount', [loopDir]).code, 0, 'loop unmount flushes the file system')
    fs.rmdirSync(loopDir)
  }
  t.equal(qimgCli(['umount', mp]).code, 0)
  t.equal(sh('qemu-img', ['check', overlay]).code, 0, 'the overlay is consistent')
  t.ok(fs.readFileSync(base).equals(baseBytes), 'the base image is untouched')
  const out = path.join(dir, 'out.raw')
  qemuImgOk(['convert', '-O', 'raw', overlay, out])
  const p1 = path.join(dir, 'p1.raw')
  t.equal(sh('dd', [`if=${out}`, `of=${p1}`, 'bs=512', `skip=${part.start / 512}`, `count=${part.size / 512}`, 'status=none']).code, 0)
  const fsck = sh('e2fsck', ['-fn', p1])
  t.equal(fsck.code, 0, `e2fsck of the written file system: ${fsck.stdout}`)
  for (const [name, data] of files) {
    const back = path.join(dir, `back-${name}`)
    sh('debugfs', ['-R', `dump /${name} ${back}`, p1])
    t.ok(fs.existsSync(back) && fs.readFileSync(back).equals(data), `${name} is in the overlay`)
  }
})
