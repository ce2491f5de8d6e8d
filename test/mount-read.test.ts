// Every file of a mount reads back exactly what `qemu-img convert -O raw`
// makes of the same thing: chains and their layers, internal snapshots,
// compressed (zlib, zstd) images; in parallel; with truthful stat data.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { mountDir, mountImage, qimgCli, runAsync, sameBytes, sh } from './helpers/mount.js'

/** deterministic bytes mixing zeros, patterns, text and noise, so compression has work to do */
function content (size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size)
  let x = seed >>> 0 || 1
  const rnd = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
  for (let pos = 0; pos < size; pos += 64 << 10) {
    const kind = rnd() % 4
    const end = Math.min(pos + (64 << 10), size)
    if (kind === 1) buf.fill(rnd() & 0xff, pos, end)
    else if (kind === 2) buf.write(`block at ${pos} of seed ${seed}\n`.repeat(4096), pos, end - pos)
    else if (kind === 3) for (let i = pos; i < end; i++) buf[i] = rnd() & 0xff
  }
  return buf
}

function raw (dir: string, name: string, image: string, extra: string[] = []): string {
  const out = path.join(dir, name)
  qemuImgOk(['convert', ...extra, '-O', 'raw', image, out])
  return out
}

t.test('a chain: disk.raw and every layer equal qemu-img convert', async t => {
  const dir = t.testdir()
  const f = (n: string): string => path.join(dir, n)
  fs.writeFileSync(f('base.raw'), content(6 << 20, 1))
  qemuImgOk(['create', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', f('mid.qcow2')])
  qemuIoOk(['write -P 0x5a 1M 1M', 'write -z 3M 512k', 'write -P 7 5999k 1k'], f('mid.qcow2'))
  qemuImgOk(['create', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', 'mid.qcow2', '-F', 'qcow2', f('top.qcow2'), '8M'])
  qemuIoOk(['write -P 0xa5 1536k 8k', 'discard 0 64k', 'write -P 1 7M 1M'], f('top.qcow2'))
  const mp = mountImage(t, [f('top.qcow2')])
  t.same(fs.readdirSync(mp).sort(), ['disk.raw', 'layers', 'partitions', 'snapshots'])
  t.same(fs.readdirSync(path.join(mp, 'layers')).sort(), ['0.raw', '1.raw', '2.raw'])
  const top = raw(dir, 'top.out', f('top.qcow2'))
  t.ok(sameBytes(path.join(mp, 'disk.raw'), top), 'disk.raw')
  t.ok(sameBytes(path.join(mp, 'layers/0.raw'), top), 'layers/0.raw')
  t.ok(sameBytes(path.join(mp, 'layers/1.raw'), raw(dir, 'mid.out', f('mid.qcow2'))), 'layers/1.raw')
  t.ok(sameBytes(path.join(mp, 'layers/2.raw'), f('base.raw')), 'layers/2.raw')
  t.equal(fs.statSync(path.join(mp, 'layers/1.raw')).size, 6 << 20, 'a layer has its own size')
  t.equal(fs.statSync(path.join(mp, 'disk.raw')).size, 8 << 20)
})

t.test('snapshots: every snapshot file and --snapshot equal convert -l', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'snap.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', img, '4M'])
  qemuIoOk(['write -P 1 0 1M'], img)
  qemuImgOk(['snapshot', '-c', 'first', img])
  qemuIoOk(['write -P 2 512k 1M'], img)
  qemuImgOk(['resize', img, '6M'])
  qemuIoOk(['write -P 3 5M 1M'], img)
  qemuImgOk(['snapshot', '-c', 'second', img])
  qemuIoOk(['write -P 4 0 64k'], img)
  const mp = mountImage(t, [img])
  t.same(fs.readdirSync(path.join(mp, 'snapshots')).sort(), ['first.raw', 'second.raw'])
  for (const name of ['first', 'second']) {
    t.ok(sameBytes(path.join(mp, `snapshots/${name}.raw`), raw(dir, `${name}.out`, img, ['-l', `snapshot.name=${name}`])), `snapshots/${name}.raw`)
  }
  t.equal(fs.statSync(path.join(mp, 'snapshots/first.raw')).size, 6 << 20, 'a snapshot is read at the current size, as qemu does')
  t.ok(sameBytes(path.join(mp, 'disk.raw'), raw(dir, 'now.out', img)), 'disk.raw is the current state')
  const snapDate = JSON.parse(sh('qemu-img', ['info', '--output=json', img]).stdout).snapshots[0]['date-sec']
  t.equal(Math.floor(fs.statSync(path.join(mp, 'snapshots/first.raw')).mtimeMs / 1000), snapDate, 'a snapshot file is dated when the snapshot was taken')

  const mp2 = mountImage(t, ['--snapshot', 'first', img])
  t.ok(sameBytes(path.join(mp2, 'disk.raw'), path.join(dir, 'first.out')), '--snapshot NAME')
  const mp3 = mountImage(t, ['--snapshot', 'snapshot.id=2', img])
  t.ok(sameBytes(path.join(mp3, 'disk.raw'), path.join(dir, 'second.out')), '--snapshot snapshot.id=ID')
})

for (const type of ['zlib', 'zstd']) {
  t.test(`compressed ${type} qcow2 reads back, sequentially and by parallel random readers`, async t => {
    const dir = t.testdir()
    const src = path.join(dir, 'src.raw')
    fs.writeFileSync(src, content(24 << 20, type === 'zlib' ? 7 : 9))
    const img = path.join(dir, 'c.qcow2')
    qemuImgOk(['convert', '-c', '-O', 'qcow2', '-o', `compression_type=${type}`, src, img])
    const mp = mountImage(t, ['--cache-size', '4M', img])
    const disk = path.join(mp, 'disk.raw')
    t.ok(sameBytes(disk, src), 'sequential read')
    // four processes at once, each 150 random reads of up to 300 KiB, checked against the source
    const reader = `
      const fs = require('fs')
      const [disk, src, seed] = process.argv.slice(1)
      const a = fs.openSync(disk, 'r'), b = fs.openSync(src, 'r')
      const size = fs.fstatSync(b).size
      let x = Number(seed)
      const rnd = n => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
      for (let i = 0; i < 150; i++) {
        const len = 1 + rnd(300 << 10), off = rnd(size - len)
        const p = Buffer.alloc(len), q = Buffer.alloc(len)
        fs.readSync(a, p, 0, len, off); fs.readSync(b, q, 0, len, off)
        if (!p.equals(q)) { console.log('mismatch at ' + off + '+' + len); process.exit(1) }
      }
      console.log('ok')`
    const results = await Promise.all([1, 2, 3, 4].map(seed => runAsync(process.execPath, ['-e', reader, disk, src, String(seed * 7919)])))
    for (const r of results) t.same([r.code, r.stdout.trim()], [0, 'ok'], 'random reader')
  })
}

t.test('stat data: st_size is the virtual size, st_blocks what is allocated', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'sparse.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', img, '1G'])
  qemuIoOk(['write -P 1 0 192k', 'write -P 2 300M 1M', 'write -z 600M 1M', 'write -P 3 1023M 64k'], img)
  const mp = mountImage(t, [img])
  const map = JSON.parse(sh('qemu-img', ['map', '--output=json', img]).stdout) as Array<{ length: number, data: boolean }>
  const allocated = map.filter(e => e.data).reduce((s, e) => s + e.length, 0)
  const st = fs.statSync(path.join(mp, 'disk.raw'))
  t.equal(st.size, 1 << 30)
  t.equal(st.blocks * 512, allocated, 'st_blocks counts the data clusters')
  t.equal(sh('du', ['-k', path.join(mp, 'disk.raw')]).stdout.split('\t')[0], String(allocated / 1024), 'du sees it too')
})

t.test('read-only by default: writes fail with EROFS, the image is untouched', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'ro.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', img, '2M'])
  qemuIoOk(['write -P 9 0 1M'], img)
  const before = fs.readFileSync(img)
  const mtime = fs.statSync(img).mtimeMs
  const mp = mountImage(t, [img])
  for (const file of ['disk.raw', 'layers/0.raw']) {
    const r = sh('dd', ['if=/dev/zero', `of=${path.join(mp, file)}`, 'bs=4k', 'count=1', 'conv=notrunc'])
    t.not(r.code, 0, `dd into ${file} fails`)
    t.match(r.stderr, /Read-only file system/, `${file}: EROFS`)
  }
  t.match(sh('touch', [path.join(mp, 'new')]).stderr, /Read-only file system/)
  t.equal(qimgCli(['umount', mp]).code, 0)
  t.ok(before.equals(fs.readFileSync(img)), 'image bytes unchanged')
  t.equal(fs.statSync(img).mtimeMs, mtime, 'image mtime unchanged')
})

t.test('an encrypted (LUKS) qcow2 with --object and --image-opts', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'enc.qcow2')
  const secret = 'secret,id=s0,data=hunter2'
  const opts = `driver=qcow2,file.filename=${img},encrypt.key-secret=s0`
  // (a short iter-time keeps key derivation quick)
  qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', secret, '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', img, '4M'])
  sh('qemu-io', ['--object', secret, '--image-opts', '-c', 'write -P 0x77 64k 1M', '-c', 'write -P 0x12 3M 4k', opts])
  const args = ['--object', secret, '--image-opts', opts]
  const mp = mountDir(t)
  const r = qimgCli(['mount', ...args, mp])
  t.equal(r.code, 0, r.stderr)
  const expected = path.join(dir, 'enc.out')
  qemuImgOk(['convert', '--object', secret, '--image-opts', opts, '-O', 'raw', expected])
  t.ok(sameBytes(path.join(mp, 'disk.raw'), expected), 'decrypted bytes equal qemu-img convert')
})
