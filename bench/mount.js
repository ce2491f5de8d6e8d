#!/usr/bin/env node
// qimg mount throughput: sequential read of disk.raw for an uncompressed and
// a zlib-compressed qcow2, and write throughput through an --overlay. For
// reference, the same reads by `qemu-img convert -O raw` (to a file), and,
// when qemu-storage-daemon is installed, the same reads through its FUSE
// export. Best of BENCH_RUNS (default 3) wall-clock times; the reads and
// writes run in child processes (dd), never in the process serving a mount.
// `npm run bench` runs it after bench/run.js (alone: npm run build && node bench/mount.js).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const QIMG = path.join(ROOT, 'bin/run.js')
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZE_MB = Number(process.env.BENCH_MOUNT_MB ?? 256)

// `npm run bench` runs this after bench/run.js; without FUSE there is nothing to measure
if (!fs.existsSync('/dev/fuse') || process.getuid?.() !== 0) {
  console.log('qimg mount: skipped (needs root and /dev/fuse)')
  process.exit(0)
}

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts })
const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'qimg-bench-mount-'))
const f = n => path.join(dir, n)

/** seconds `fn` takes */
function timed (fn) {
  const t0 = process.hrtime.bigint()
  fn()
  return Number(process.hrtime.bigint() - t0) / 1e9
}

/** the best of RUNS: `fn` is timed, or times itself when it returns a number */
function best (fn) {
  let min = Infinity
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint()
    const r = fn()
    min = Math.min(min, typeof r === 'number' ? r : Number(process.hrtime.bigint() - t0) / 1e9)
  }
  return min
}

const mbps = s => `${(SIZE_MB / s).toFixed(0)} MB/s`
const ddRead = file => sh('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'])
const mounted = mp => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === mp)

function withQimgMount (args, fn) {
  const mp = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-bench-mnt-'))
  try {
    sh(QIMG, ['mount', ...args, mp])
    return fn(mp)
  } finally {
    if (mounted(mp)) spawnSync(QIMG, ['umount', mp])
    fs.rmdirSync(mp)
  }
}

async function withQsdMount (image, fn) {
  const mpFile = f('qsd-export.raw')
  fs.writeFileSync(mpFile, '')
  const qsd = spawn('qemu-storage-daemon', [
    '--blockdev', `driver=file,node-name=file0,filename=${image},read-only=on`,
    '--blockdev', 'driver=qcow2,node-name=fmt0,file=file0,read-only=on',
    '--export', `type=fuse,id=exp0,node-name=fmt0,mountpoint=${mpFile}`,
  ], { stdio: 'ignore' })
  try {
    for (let i = 0; i < 500 && !mounted(mpFile); i++) await sleep(20)
    return fn(mpFile)
  } finally {
    qsd.kill('SIGTERM')
    await new Promise(resolve => qsd.on('exit', resolve))
  }
}

/** cold sequential read of bench/fuse-noop.js's file, best of RUNS (a fresh mount each run) */
async function noopCeiling () {
  let min = Infinity
  for (let i = 0; i < RUNS; i++) {
    const mp = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-bench-noop-'))
    const server = spawn(process.execPath, [path.join(ROOT, 'bench/fuse-noop.js'), mp, String(SIZE_MB << 20)], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise((resolve, reject) => {
        server.stdout.once('data', resolve)
        server.once('exit', code => reject(new Error(`fuse-noop exited with ${code}`)))
      })
      min = Math.min(min, timed(() => ddRead(path.join(mp, 'file'))))
    } finally {
      server.kill('SIGTERM')
      await new Promise(resolve => server.exitCode !== null ? resolve() : server.once('exit', resolve))
      if (mounted(mp)) spawnSync('fusermount', ['-u', '-z', mp])
      fs.rmdirSync(mp)
    }
  }
  return min
}

const hasQsd = spawnSync('qemu-storage-daemon', ['--version']).status === 0

try {
  // half random bytes (incompressible), half text: compression has work to do both ways
  sh('sh', ['-c', `head -c ${SIZE_MB / 2}M /dev/urandom > src.raw && yes 'qimg mount benchmark line 0123456789' | head -c ${SIZE_MB / 2}M >> src.raw`], { cwd: dir })
  sh('qemu-img', ['convert', '-O', 'qcow2', 'src.raw', 'plain.qcow2'], { cwd: dir })
  sh('qemu-img', ['convert', '-c', '-O', 'qcow2', 'src.raw', 'zlib.qcow2'], { cwd: dir })
  console.log(`qimg mount, ${SIZE_MB} MiB, best of ${RUNS}`)
  for (const img of ['plain.qcow2', 'zlib.qcow2']) {
    // cold: a fresh mount for every run, so nothing is in the kernel's page cache of disk.raw
    const ours = best(() => withQimgMount([f(img)], mp => timed(() => ddRead(path.join(mp, 'disk.raw')))))
    // warm: read again in the same mount (read-only mounts keep the page cache across opens)
    const warm = withQimgMount([f(img)], mp => { ddRead(path.join(mp, 'disk.raw')); return best(() => ddRead(path.join(mp, 'disk.raw'))) })
    const convert = best(() => sh('qemu-img', ['convert', '-O', 'raw', f(img), f('out.raw')]))
    let line = `read disk.raw of ${img}: ${mbps(ours)} cold, ${mbps(warm)} re-read   (qemu-img convert -O raw: ${mbps(convert)}`
    if (hasQsd) {
      // cold too: a fresh export for every run
      let qsd = Infinity
      for (let i = 0; i < RUNS; i++) qsd = Math.min(qsd, await withQsdMount(f(img), file => timed(() => ddRead(file))))
      line += `, qemu-storage-daemon fuse export: ${mbps(qsd)} cold`
    }
    else line += ', qemu-storage-daemon not installed: no FUSE comparison'
    console.log(line + ')')
  }
  console.log(`fuse-native ceiling (a server that answers reads without doing anything): ${mbps(await noopCeiling())} cold`)
  // the overlay exists beforehand: this measures writing, not creating
  sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', f('plain.qcow2'), '-F', 'qcow2', f('over.qcow2')])
  const write = withQimgMount(['--overlay', f('over.qcow2'), f('plain.qcow2')], mp => best(() =>
    sh('dd', [`if=${f('src.raw')}`, `of=${path.join(mp, 'disk.raw')}`, 'bs=1M', 'conv=notrunc,fsync', 'status=none'])))
  console.log(`write disk.raw through --overlay: ${mbps(write)}`)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
