#!/usr/bin/env node
// qimg against the real qemu-img, measured in the same run: for each case the
// images are built with qemu-img/qemu-io in a temporary directory, then both
// tools run the same command line alternately, and the best of N wall-clock
// times is kept for each (the machine is shared; the minimum is the stable
// number). Run with `npm run bench` (it builds first).
//
// Environment: BENCH_RUNS (default 5), BENCH_DIR (where to make the temporary
// directory; a tmpfs such as /dev/shm keeps disk writeback out of the
// numbers), BENCH_FILTER (substring of case names to run).
//
// Adding a case: append to CASES. `setup(dir)` builds its inputs once,
// `args` is the command line (run with cwd = dir), `reset(dir)` runs before
// every timed run (e.g. to remove the previous output), `command` names the
// qimg command the case needs (skipped with a message when qimg lacks it).
import { spawnSync, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import crypto from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const QIMG = path.join(ROOT, 'bin/qemu-img.js')
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const FILTER = process.env.BENCH_FILTER ?? ''

const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] })
const qemuIo = (dir, file, ...cmds) => sh('qemu-io', [...cmds.flatMap(c => ['-c', c]), file], dir)
const rm = (dir, name) => fs.rmSync(path.join(dir, name), { force: true })

/** 128 MiB in a qcow2: a quarter random, the rest text of varying compressibility */
function compressibleQcow2 (dir) {
  sh('sh', ['-c', "head -c 32M /dev/urandom > mixed.raw && seq 1 100000000 | head -c 96M >> mixed.raw"], dir)
  sh('qemu-img', ['convert', '-O', 'qcow2', 'mixed.raw', 'mixed.qcow2'], dir)
  rm(dir, 'mixed.raw')
}

const CASES = [
  {
    name: 'convert -O raw: qcow2 with 512 MiB of data',
    command: 'convert',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'data.qcow2', '1G'], dir)
      qemuIo(dir, 'data.qcow2', 'write -P 7 0 256M', 'write -P 9 512M 256M')
    },
    reset: dir => rm(dir, 'out.raw'),
    args: ['convert', '-O', 'raw', 'data.qcow2', 'out.raw'],
  },
  {
    name: 'convert -O raw: compressed qcow2 (64 MiB)',
    command: 'convert',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'plain.qcow2', '64M'], dir)
      qemuIo(dir, 'plain.qcow2', 'write -P 5 0 32M', 'write -P 6 40M 24M')
      sh('qemu-img', ['convert', '-c', '-O', 'qcow2', 'plain.qcow2', 'comp.qcow2'], dir)
    },
    reset: dir => rm(dir, 'out-c.raw'),
    args: ['convert', '-O', 'raw', 'comp.qcow2', 'out-c.raw'],
  },
  {
    name: 'convert -c -O qcow2: 64 MiB of random data',
    command: 'convert',
    setup (dir) {
      fs.writeFileSync(path.join(dir, 'random.raw'), crypto.randomBytes(64 << 20))
    },
    reset: dir => rm(dir, 'out-c.qcow2'),
    args: ['convert', '-c', '-O', 'qcow2', 'random.raw', 'out-c.qcow2'],
  },
  {
    name: 'convert -O qcow2: raw with 512 MiB of data',
    command: 'convert',
    setup (dir) {
      // half random, half a repeated text line; a hole in the middle
      sh('sh', ['-c', "head -c 256M /dev/urandom > src.raw && truncate -s 768M src.raw && yes 'qimg bench line 0123456789' | head -c 256M >> src.raw"], dir)
    },
    reset: dir => rm(dir, 'out.qcow2'),
    args: ['convert', '-O', 'qcow2', 'src.raw', 'out.qcow2'],
  },
  {
    name: 'convert -c -O qcow2: qcow2 (zlib, 128 MiB)',
    command: 'convert',
    setup: compressibleQcow2,
    reset: dir => rm(dir, 'out-z.qcow2'),
    args: ['convert', '-c', '-O', 'qcow2', 'mixed.qcow2', 'out-z.qcow2'],
  },
  {
    name: 'convert -c -O qcow2: qcow2 (zstd, 128 MiB)',
    command: 'convert',
    setup: compressibleQcow2,
    reset: dir => rm(dir, 'out-zs.qcow2'),
    args: ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', 'mixed.qcow2', 'out-zs.qcow2'],
  },
  {
    name: 'measure: qcow2 with 512 MiB of data',
    command: 'measure',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'm.qcow2', '4G'], dir)
      const writes = []
      for (let i = 0; i < 64; i++) writes.push(`write -P ${i + 1} ${i * 64}M 8M`)
      qemuIo(dir, 'm.qcow2', ...writes)
    },
    args: ['measure', '-O', 'qcow2', 'm.qcow2'],
  },
  {
    name: 'compare: qcow2 with 256 MiB of data vs raw',
    command: 'compare',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'cmp.qcow2', '512M'], dir)
      qemuIo(dir, 'cmp.qcow2', 'write -P 3 0 128M', 'write -P 4 256M 128M')
      sh('qemu-img', ['convert', '-O', 'raw', 'cmp.qcow2', 'cmp.raw'], dir)
    },
    args: ['compare', 'cmp.qcow2', 'cmp.raw'],
  },
  {
    name: 'info: qcow2',
    command: 'info',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'info.qcow2', '10G'], dir)
      qemuIo(dir, 'info.qcow2', 'write 0 1M')
    },
    args: ['info', 'info.qcow2'],
  },
  {
    name: 'map: 1 TiB sparse qcow2',
    command: 'map',
    setup (dir) {
      sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'sparse.qcow2', '1T'], dir)
      const writes = []
      for (let i = 0; i < 64; i++) writes.push(`write -P ${i + 1} ${i * 16}G 1M`)
      qemuIo(dir, 'sparse.qcow2', ...writes)
    },
    args: ['map', 'sparse.qcow2'],
  },
]

function hasCommand (name) {
  return fs.existsSync(path.join(ROOT, 'dist/commands', `${name}.js`))
}

function timeOnce (cmd, args, dir, env = process.env) {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
  return ms
}

function main () {
  if (!fs.existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) {
    console.error('bench: build first (npm run build)')
    process.exit(1)
  }
  const base = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'qimg-bench-'))
  console.log(`best of ${RUNS} runs, in ${base}`)
  // what no Node program can go below: qimg's floor for short commands (info, measure).
  // The bins start Node without NODE_EXTRA_CA_CERTS (see their shebang): with
  // it, Node parses that certificate file first, which some machines make slow.
  const noCerts = { ...process.env }
  delete noCerts.NODE_EXTRA_CA_CERTS
  let nodeStart = Infinity
  for (let i = 0; i < RUNS; i++) nodeStart = Math.min(nodeStart, timeOnce(process.execPath, ['-e', '0'], base, noCerts))
  let withCerts = Infinity
  if (process.env.NODE_EXTRA_CA_CERTS) for (let i = 0; i < RUNS; i++) withCerts = Math.min(withCerts, timeOnce(process.execPath, ['-e', '0'], base))
  console.log(`bare node start-up (node -e 0): ${nodeStart.toFixed(0)} ms` +
    (Number.isFinite(withCerts) ? ` (${withCerts.toFixed(0)} ms with this machine's NODE_EXTRA_CA_CERTS, which qimg's bins drop)` : ''))
  console.log(`${'case'.padEnd(46)} ${'qemu-img'.padStart(10)} ${'qimg'.padStart(10)} ${'ratio'.padStart(7)}`)
  try {
    for (const c of CASES) {
      if (FILTER && !c.name.includes(FILTER)) continue
      if (!hasCommand(c.command)) {
        console.log(`${c.name.padEnd(46)} skipped: qimg has no '${c.command}' command yet`)
        continue
      }
      const dir = fs.mkdtempSync(path.join(base, 'case-'))
      c.setup(dir)
      let qemu = Infinity
      let qimg = Infinity
      for (let i = 0; i < RUNS; i++) {
        // alternate the tools so both see the same machine state
        c.reset?.(dir)
        qemu = Math.min(qemu, timeOnce('qemu-img', c.args, dir))
        c.reset?.(dir)
        // the bin itself, as a user runs it (its shebang picks node's options)
        qimg = Math.min(qimg, timeOnce(QIMG, c.args, dir))
      }
      c.reset?.(dir)
      fs.rmSync(dir, { recursive: true, force: true })
      console.log(`${c.name.padEnd(46)} ${`${qemu.toFixed(0)} ms`.padStart(10)} ${`${qimg.toFixed(0)} ms`.padStart(10)} ${(qimg / qemu).toFixed(2).padStart(7)}`)
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
  }
}

main()
