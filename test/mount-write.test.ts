// Writes: --writable into a raw image (directly and through partitions),
// --overlay into a qcow2 overlay that qemu-img check accepts and whose base
// never changes, clean flushes on umount/SIGTERM/SIGINT, and a SIGKILLed
// server that leaves neither a stale mount nor an inconsistent overlay.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import { nodeCommand, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { isMounted, mountDir, mountImage, QIMG_RUN, qimgCli, serverPid, sh, waitFor } from './helpers/mount.js'
import { pidFilePath } from '../fuse/runtime.js'


interface Write { file: string, offset: number, data: Buffer }

/** write with dd (in a child process), fsync'd */
function ddWrite (t: Tap, w: Write, dir: string): void {
  const src = path.join(dir, `w-${w.offset}.bin`)
  fs.writeFileSync(src, w.data)
  const r = sh('dd', [`if=${src}`, `of=${w.file}`, 'bs=1M', `seek=${w.offset}`, 'oflag=seek_bytes', 'conv=notrunc,fsync', 'status=none'])
  t.equal(r.code, 0, `dd at ${w.offset}: ${r.stderr}`)
}
type Tap = Parameters<Parameters<typeof t.test>[1]>[0]

t.test('--writable writes into a raw image, through disk.raw and through a partition', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'disk.img')
  fs.writeFileSync(img, Buffer.alloc(0))
  fs.truncateSync(img, 16 << 20)
  t.equal(sh('sfdisk', ['-q', img], { input: 'label: dos\n,4M,83\n,,5\n,4M,83\n,,83\n' }).code, 0)
  const parts = JSON.parse(sh('sfdisk', ['-J', img]).stdout).partitiontable.partitions as Array<{ node: string, start: number }>
  const p5 = parts.find(p => p.node.endsWith('5'))!.start * 512
  const expected = fs.readFileSync(img)
  const mp = mountImage(t, ['-f', 'raw', '--writable', img])
  t.equal(fs.statSync(path.join(mp, 'disk.raw')).mode & 0o777, 0o644, 'disk.raw is writable')
  t.equal(fs.statSync(path.join(mp, 'layers/0.raw')).mode & 0o777, 0o444, 'layers stay read-only')
  const writes: Write[] = [
    { file: path.join(mp, 'disk.raw'), offset: 8 << 20, data: crypto.randomBytes(300000) },
    { file: path.join(mp, 'disk.raw'), offset: 12345, data: crypto.randomBytes(7) },
    { file: path.join(mp, 'partitions/5.raw'), offset: 1000, data: crypto.randomBytes(200 << 10) },
  ]
  for (const w of writes) {
    ddWrite(t, w, dir)
    w.data.copy(expected, w.offset + (w.file.endsWith('5.raw') ? p5 : 0))
  }
  const past = sh('dd', ['if=/dev/zero', `of=${path.join(mp, 'partitions/6.raw')}`, 'bs=512', `seek=${fs.statSync(path.join(mp, 'partitions/6.raw')).size / 512}`, 'count=1', 'conv=notrunc'])
  t.match(past.stderr, /No space left on device/, 'a partition does not grow')
  t.equal(qimgCli(['umount', mp]).code, 0)
  t.ok(fs.readFileSync(img).equals(expected), 'the image holds every write at its place')
})

t.test('--overlay: copy-on-write into a qcow2 overlay; the base never changes', async t => {
  const dir = t.testdir()
  const base = path.join(dir, 'base.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', base, '8M'])
  qemuIoOk(['write -P 0x61 0 3M', 'write -P 0x62 5M 1M'], base)
  const baseHash = crypto.createHash('sha256').update(fs.readFileSync(base)).digest('hex')
  const overlay = path.join(dir, 'over.qcow2')
  const expected = path.join(dir, 'expected.raw')
  qemuImgOk(['convert', '-O', 'raw', base, expected])
  const exp = fs.readFileSync(expected)

  const mp = mountImage(t, ['--overlay', overlay, base])
  t.ok(fs.existsSync(overlay), 'the overlay exists')
  const writes: Write[] = [
    { file: path.join(mp, 'disk.raw'), offset: 65536 - 100, data: crypto.randomBytes(333) }, // across a cluster boundary
    { file: path.join(mp, 'disk.raw'), offset: 4 << 20, data: crypto.randomBytes(1 << 20) },
    { file: path.join(mp, 'disk.raw'), offset: (8 << 20) - 10, data: crypto.randomBytes(10) },
  ]
  for (const w of writes) { ddWrite(t, w, dir); w.data.copy(exp, w.offset) }
  fs.writeFileSync(expected, exp)
  t.equal(sh('cmp', [path.join(mp, 'disk.raw'), expected]).code, 0, 'reads back through the mount')
  qemuImgOk(['convert', '-O', 'raw', base, path.join(dir, 'base.raw')])
  t.equal(sh('cmp', [path.join(mp, 'layers/0.raw'), path.join(dir, 'base.raw')]).code, 0, 'layers/0.raw is still the base')
  t.equal(qimgCli(['umount', mp]).code, 0)

  const check = sh('qemu-img', ['check', overlay])
  t.equal(check.code, 0, `qemu-img check: ${check.stdout}${check.stderr}`)
  t.equal(JSON.parse(sh('qemu-img', ['info', '--output=json', overlay]).stdout)['backing-filename'], fs.realpathSync(base))
  qemuImgOk(['convert', '-O', 'raw', overlay, path.join(dir, 'out.raw')])
  t.equal(sh('cmp', [path.join(dir, 'out.raw'), expected]).code, 0, 'qemu-img reads the writes from the overlay')
  t.equal(crypto.createHash('sha256').update(fs.readFileSync(base)).digest('hex'), baseHash, 'base image unchanged')

  // the overlay is reused by the next mount
  const mp2 = mountImage(t, ['--overlay', overlay, base])
  t.equal(sh('cmp', [path.join(mp2, 'disk.raw'), expected]).code, 0, 'an existing overlay is reused')
  t.equal(qimgCli(['umount', mp2]).code, 0)

  const other = path.join(dir, 'other.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', other, '8M'])
  const r = qimgCli(['mount', '--overlay', overlay, other, mountDir(t)])
  t.equal(r.code, 1)
  t.equal(r.stderr, `qimg: Overlay '${overlay}' is backed by '${fs.realpathSync(base)}', not by '${other}'\n`)
})

t.test('SIGTERM and SIGINT flush and unmount cleanly', async t => {
  const dir = t.testdir()
  const base = path.join(dir, 'base.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', base, '4M'])
  const overlay = path.join(dir, 'over.qcow2')
  const data = crypto.randomBytes(512 << 10)
  const src = path.join(dir, 'data.bin')
  fs.writeFileSync(src, data)

  const mp = mountImage(t, ['--overlay', overlay, base])
  t.equal(sh('dd', [`if=${src}`, `of=${mp}/disk.raw`, 'bs=64k', 'seek=1', 'conv=notrunc', 'status=none']).code, 0)
  const pid = serverPid(mp)!
  process.kill(pid, 'SIGTERM')
  await waitFor('the server to exit', () => !fs.existsSync(`/proc/${pid}`) || /^\S+ \(\S+\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')))
  t.notOk(isMounted(mp), 'unmounted')
  t.equal(sh('qemu-img', ['check', overlay]).code, 0)
  qemuImgOk(['convert', '-O', 'raw', overlay, path.join(dir, 'o.raw')])
  t.equal(sh('cmp', [`--ignore-initial=0:65536`, `--bytes=${data.length}`, src, path.join(dir, 'o.raw')]).code, 0, 'the data is in the overlay')

  // --foreground: the server is the qimg process itself; SIGINT stops it
  const mp2 = mountDir(t)
  const fg = spawn(...nodeCommand([QIMG_RUN, 'mount', '--foreground', '--overlay', overlay, base, mp2]), { stdio: 'ignore' })
  const exited = new Promise<number | null>(resolve => fg.on('exit', code => resolve(code)))
  await waitFor('the foreground mount', () => isMounted(mp2))
  t.equal(sh('dd', [`if=/dev/zero`, `of=${mp2}/disk.raw`, 'bs=64k', 'count=2', 'conv=notrunc', 'status=none']).code, 0)
  fg.kill('SIGINT')
  t.equal(await exited, 0, 'exit 0 after SIGINT')
  t.notOk(isMounted(mp2))
  t.equal(sh('qemu-img', ['check', overlay]).code, 0)
  t.equal(sh('qemu-io', ['-c', 'read -P 0 0 128k', overlay]).stdout.includes('Pattern verification failed'), false, 'foreground writes flushed')
})

t.test('a SIGKILLed server leaves no stale mount and a consistent overlay', async t => {
  const dir = t.testdir()
  const base = path.join(dir, 'base.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', base, '16M'])
  qemuIoOk(['write -P 0x33 0 16M'], base)
  const overlay = path.join(dir, 'over.qcow2')
  const args = ['--overlay', overlay, base]
  const mp = mountImage(t, args)
  const synced = crypto.randomBytes(256 << 10)
  // what was fsync'd before the kill must survive it
  ddWrite(t, { file: path.join(mp, 'disk.raw'), offset: 8 << 20, data: synced }, dir)
  // a writer that keeps going while the server is killed under it
  const writer = spawn('dd', ['if=/dev/urandom', `of=${mp}/disk.raw`, 'bs=64k', 'count=256', 'conv=notrunc'], { stdio: 'ignore' })
  await waitFor('some writes to land', () => fs.existsSync(overlay) && fs.statSync(overlay).size > (1 << 20))
  process.kill(serverPid(mp)!, 'SIGKILL')
  await new Promise(resolve => writer.on('close', resolve))
  await waitFor('the kernel mount to go away', () => !isMounted(mp))
  const st = sh('stat', ['-c', '%F', mp])
  t.equal(st.stdout.trim(), 'directory', `the mount point is a plain directory again ${st.stderr}`)
  t.notMatch(st.stderr, /Transport endpoint is not connected/)
  const check = sh('qemu-img', ['check', overlay])
  t.not(check.code, 2, `no corruption: ${check.stdout}`)
  t.not(check.code, 1, `check ran: ${check.stderr}`)
  const dump = path.join(dir, 'after-kill.raw')
  qemuImgOk(['convert', '-O', 'raw', overlay, dump])
  const fd = fs.openSync(dump, 'r')
  const back = Buffer.alloc(synced.length)
  fs.readSync(fd, back, 0, back.length, 8 << 20)
  fs.closeSync(fd)
  t.ok(back.equals(synced), 'fsync\'d data survived the kill')
  // and it mounts again; the killed server's pid file is swept away then
  t.ok(fs.existsSync(pidFilePath(mp)), 'a killed server leaves its pid file')
  const mp2 = mountImage(t, args)
  t.ok(isMounted(mp2))
  t.notOk(fs.existsSync(pidFilePath(mp)), 'the next mount sweeps it')
})
