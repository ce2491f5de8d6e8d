// One-line errors with exit 1 for everything that can go wrong before a
// mount is served, and umount's refusals. Conditions are real: the missing
// /dev/fuse and libfuse2 are produced in a private mount namespace.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { NODE_IN_SHELL, qemuImgOk } from './helpers/run.js'
import { isMounted, mountDir, mountImage, QIMG_RUN, qimgCli, sh, waitFor } from './helpers/mount.js'

function image (dir: string): string {
  const img = path.join(dir, 'img.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', img, '1M'])
  return img
}

function fails (t: Test, args: string[], message: string | RegExp): void {
  const r = qimgCli(args)
  t.equal(r.code, 1, `exit 1: ${args.join(' ')}`)
  t.equal(r.stdout, '')
  if (typeof message === 'string') t.equal(r.stderr, message)
  else t.match(r.stderr, message)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
}

t.test('bad command lines', async t => {
  const dir = t.testdir()
  const img = image(dir)
  const mp = mountDir(t)
  t.equal(qimgCli(['mount', img]).stderr, "qimg: Expecting an image file name and a mount point\nTry 'qimg --help' for more information\n")
  t.equal(qimgCli(['umount']).stderr, "qimg: Expecting one mount point\nTry 'qimg --help' for more information\n")
  fails(t, ['mount', '--overlay', path.join(dir, 'o.qcow2'), '--writable', img, mp], 'qimg: --overlay and --writable are mutually exclusive\n')
  fails(t, ['mount', '--snapshot', 's', '--writable', img, mp], 'qimg: --snapshot views are read-only: they cannot be combined with --overlay or --writable\n')
  fails(t, ['mount', '--cache-size', 'lots', img, mp], "qimg: Invalid cache size specified: 'lots'\n")
  fails(t, ['mount', '--image-opts', '-f', 'qcow2', img, mp], 'qimg: --image-opts and --format are mutually exclusive\n')
  const help = qimgCli(['mount', '-h'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: qimg mount \[-f fmt \| --image-opts\].* filename mountpoint\n/)
  t.equal(qimgCli(['umount', '--help']).stdout.split('\n')[0], 'usage: qimg umount mountpoint')
})

t.test('mount point missing, not a directory, busy', async t => {
  const dir = t.testdir()
  const img = image(dir)
  fails(t, ['mount', img, path.join(dir, 'nowhere')], `qimg: Mount point '${path.join(dir, 'nowhere')}' does not exist\n`)
  fails(t, ['mount', img, img], `qimg: Mount point '${img}' is not a directory\n`)
  const mp = mountImage(t, [img])
  fails(t, ['mount', '-U', img, mp], `qimg: Mount point '${mp}' is busy (already mounted)\n`)
})

t.test('image missing, unreadable, of an unknown format, unknown snapshot', async t => {
  const dir = t.testdir()
  const img = image(dir)
  const mp = mountDir(t)
  const missing = path.join(dir, 'missing.qcow2')
  fails(t, ['mount', missing, mp], `qimg: Could not open '${missing}': Could not open '${missing}': No such file or directory\n`)
  fails(t, ['mount', '-f', 'vhd9', img, mp], `qimg: Could not open '${img}': Unknown driver 'vhd9'\n`)
  fails(t, ['mount', '--snapshot', 'nosuch', img, mp], "qimg: Failed to load snapshot: Can't find snapshot\n")
  const bad = path.join(dir, 'bad.qcow2')
  const head = fs.readFileSync(img)
  head.writeUInt32BE(99, 4) // qcow2 version 99
  fs.writeFileSync(bad, head)
  fails(t, ['mount', bad, mp], /^qimg: Could not open '.*bad\.qcow2': Unsupported qcow2 version 99\n$/)
  t.notOk(isMounted(mp), 'nothing was mounted')
})

t.test('an image another process writes is refused; one we serve is protected from qemu writers', async t => {
  const dir = t.testdir()
  const img = image(dir)
  // a socket path must be short (sun_path): not in the test directory
  const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-nbd-'))
  t.teardown(() => fs.rmSync(sockDir, { recursive: true, force: true }))
  const sock = path.join(sockDir, 'nbd.sock')
  const pidFile = path.join(sockDir, 'nbd.pid')
  const nbd = sh('qemu-nbd', ['--fork', '--persistent', `--pid-file=${pidFile}`, '-k', sock, '-f', 'qcow2', img])
  t.equal(nbd.code, 0, nbd.stderr)
  t.teardown(() => { try { process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM') } catch {} })
  const mp = mountDir(t)
  fails(t, ['mount', img, mp], `qimg: Could not open '${img}': Failed to get shared "write" lock. Is another process using the image [${img}]?\n`)
  t.equal(qimgCli(['mount', '-U', img, mp]).code, 0, '-U shares the image anyway')
  t.equal(qimgCli(['umount', mp]).code, 0)
  process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM')
  await waitFor('qemu-nbd to exit', () => sh('qemu-io', ['-c', 'read 0 512', img]).code === 0)

  const mp2 = mountImage(t, [img])
  const w = sh('qemu-io', ['-c', 'write 0 512', img])
  t.match(w.stderr, /Failed to get "write" lock/, 'qemu-io cannot write the mounted image')
  t.equal(sh('qemu-img', ['info', img]).code, 0, 'qemu-img info can still read it')
  t.equal(qimgCli(['umount', mp2]).code, 0)
})

t.test('no /dev/fuse, no libfuse2: the package to install is named', async t => {
  const dir = t.testdir()
  const img = image(dir)
  const mp = mountDir(t)
  const noDev = sh('unshare', ['-m', 'sh', '-c', `mount -t tmpfs none /dev && exec ${NODE_IN_SHELL} "${QIMG_RUN}" mount "${img}" "${mp}"`])
  t.equal(noDev.code, 1)
  t.match(noDev.stderr, /^qimg: FUSE is not available: \/dev\/fuse does not exist/)
  const lib = fs.realpathSync('/usr/lib/x86_64-linux-gnu/libfuse.so.2')
  const noLib = sh('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null "${lib}" && exec ${NODE_IN_SHELL} "${QIMG_RUN}" mount "${img}" "${mp}"`])
  t.equal(noLib.code, 1)
  t.match(noLib.stderr, /^qimg: Cannot load libfuse\.so\.2 \(.*\): install the Debian package libfuse2\n$/)
  t.notOk(isMounted(mp))
})

t.test('umount: not mounted, not ours, busy while a file is open', async t => {
  const dir = t.testdir()
  const img = image(dir)
  const idle = mountDir(t)
  fails(t, ['umount', idle], `qimg: '${idle}' is not mounted\n`)
  fails(t, ['umount', '/proc'], "qimg: '/proc' is not a qimg mount (it is proc)\n")
  const mp = mountImage(t, [img])
  const holder = spawn('sh', ['-c', `exec 3<"${mp}/disk.raw"; echo open; read x`], { stdio: ['pipe', 'pipe', 'ignore'] })
  await new Promise(resolve => holder.stdout.once('data', resolve))
  fails(t, ['umount', mp], `qimg: '${mp}' is busy: a file on it is still open\n`)
  t.ok(isMounted(mp), 'still mounted and served')
  t.equal(sh('cmp', ['-n', '4096', `${mp}/disk.raw`, '/dev/zero']).code, 0)
  holder.stdin.end('\n')
  await new Promise(resolve => holder.on('close', resolve))
  t.equal(qimgCli(['umount', mp]).code, 0)
  t.notOk(isMounted(mp))
})
