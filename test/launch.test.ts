// How qimg starts: the bins load the one-file bundle through V8's code cache
// (bin/launch.cjs, scripts/bundle.mjs), and commands are found in a static
// table that must list exactly what oclif's manifest lists.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { COMMANDS } from '../src/cli/commands.js'
import { NODE_IN_SHELL, ROOT, nodeCommand, qimg } from './helpers/run.js'

const require = createRequire(import.meta.url)

t.test('the command table is the manifest\'s, and each entry loads its own command', async t => {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as { commands: Record<string, { relativePath: string[] }> }
  t.same(Object.keys(COMMANDS).sort(), Object.keys(manifest.commands).sort())
  for (const [name, load] of Object.entries(COMMANDS)) {
    const fromTable = (await load()).default
    // the manifest names tsc's output; the table, imported here, the sources
    const [dist, ...rest] = manifest.commands[name].relativePath
    t.equal(dist, 'dist')
    const fromManifest = (await import(path.join(ROOT, ...rest).replace(/\.js$/, '.ts'))).default
    t.equal(fromTable, fromManifest, name)
  }
})

t.test('the bins start from the bundle, compiled from a code cache V8 accepts', async t => {
  const { compileBundle, cacheFile } = require('../bin/launch.cjs') as {
    compileBundle(argv?: string[], cache?: string | null): { file: string, cache: string | null, cached: boolean } | null
    cacheFile(argv: string[]): string
  }
  const caches = path.join(ROOT, 'dist/code-cache')
  const recorded = fs.readdirSync(caches).sort()
  t.same(recorded, ['all', 'check', 'compare', 'convert', 'convert-raw', 'create', 'info', 'map', 'measure'])
  for (const name of recorded) {
    const bundle = compileBundle([], path.join(caches, name))
    t.equal(bundle?.file, path.join(ROOT, 'dist/qimg.cjs'))
    t.ok(bundle?.cached, `${name}: the code cache is there and not rejected`)
  }
  // a command's own cache holds only what it ran, so it is smaller than the one of all
  t.ok(fs.statSync(path.join(caches, 'info')).size < fs.statSync(path.join(caches, 'all')).size * 0.7)
  t.equal(cacheFile(['info', '--output=json', 'x']), path.join(caches, 'info'))
  t.equal(cacheFile(['-T', 'none', 'convert', 'a', 'b']), path.join(caches, 'all'), 'the value of -T is no command')
  t.equal(cacheFile(['--output=json', 'map', 'x']), path.join(caches, 'map'))
  // converts into raw have their own, smaller cache
  for (const line of [['convert', 'a', 'b'], ['convert', '-O', 'raw', 'a', 'b'], ['convert', '-Oraw', 'a', 'b'], ['convert', '-pO', 'raw', 'a', 'b'], ['convert', '-O', 'qcow2', '-O', 'raw', 'a', 'b']]) {
    t.equal(cacheFile(line), path.join(caches, 'convert-raw'), line.join(' '))
  }
  for (const line of [['convert', '-O', 'qcow2', 'a', 'b'], ['convert', '-cOqcow2', 'a', 'b'], ['convert', '-f', 'raw', '-O', 'vmdk', 'a', 'b']]) {
    t.equal(cacheFile(line), path.join(caches, 'convert'), line.join(' '))
  }
  t.ok(fs.statSync(path.join(caches, 'convert-raw')).size < fs.statSync(path.join(caches, 'convert')).size * 0.9)
  for (const other of [[], ['amend', 'x'], ['--version'], ['../../etc/passwd'], ['Info']]) {
    t.equal(cacheFile(other), path.join(caches, 'all'), other.join(' '))
  }
  t.equal(compileBundle()?.cache, path.join(caches, 'all'))
  t.equal(compileBundle([], null)?.cached, false)
  const r = qimg(['info', '--output=json', path.join(ROOT, 'fixtures/demo.qcow2')])
  t.equal(r.code, 0, r.stderr)
  t.equal(JSON.parse(r.stdout).format, 'qcow2')
})

t.test('names that are not commands are refused as qemu-img refuses them', async t => {
  for (const name of ['__proto__', 'constructor', 'toString', 'Info', 'nosuch']) {
    const r = qimg([name])
    t.equal(r.code, 1, name)
    t.equal(r.stderr, `qemu-img: Command not found: ${name}\nTry 'qemu-img --help' for more information\n`, name)
  }
})

t.test('run as executables, the bins start node without NODE_EXTRA_CA_CERTS', async t => {
  // a certificate file that cannot be loaded makes node warn at start-up, before any script runs
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/qimg-test-ca.pem' }
  const viaNode = spawnSync(process.execPath, [path.join(ROOT, 'bin/qemu-img.js'), '--version'], { env, encoding: 'utf8' })
  t.match(viaNode.stderr, /extra certs/, 'node itself does read it (the check can fail)')
  for (const bin of ['bin/qemu-img.js', 'bin/run.js']) {
    const r = spawnSync(path.join(ROOT, bin), ['--version'], { env, encoding: 'utf8' })
    t.equal(r.status, 0, bin)
    t.equal(r.stderr, '', `${bin}: no certificate file read`)
    t.match(r.stdout, /version 7\.2/, bin)
  }
})

t.test('output goes out with write(2): whole through a pipe, and a reader that goes away ends qimg quietly', async t => {
  const demo = path.join(ROOT, 'fixtures/demo.qcow2')
  // the whole of a long output, read through a pipe in small pieces
  const full = spawnSync('sh', ['-c', `${NODE_IN_SHELL} "${path.join(ROOT, 'bin/qemu-img.js')}" map --output=json "${demo}" | cat`], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } })
  const direct = qimg(['map', '--output=json', demo])
  t.equal(full.stdout, direct.stdout, 'same bytes through a pipe')
  // qemu-img dies of SIGPIPE when its reader is gone: exit status 141 as a shell shows it, nothing on stderr.
  // A raw file with 4096 extents makes more output than a pipe holds, so a write must find it closed.
  const many = path.join(t.testdir(), 'many.raw')
  const fd = fs.openSync(many, 'w')
  for (let i = 0; i < 2048; i++) fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, i * 8192)
  fs.ftruncateSync(fd, 2048 * 8192)
  fs.closeSync(fd)
  const script = `${NODE_IN_SHELL} "${path.join(ROOT, 'bin/qemu-img.js')}" map --output=json "${many}" | head -c 1 >/dev/null; echo "status \${PIPESTATUS[0]}"`
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } })
  t.equal(r.stdout, 'status 141\n')
  // started with stdout closed, as qemu-img: nothing printed, nothing to complain about
  const closed = spawnSync('bash', ['-c', `${NODE_IN_SHELL} "${path.join(ROOT, 'bin/qemu-img.js')}" info "${demo}" >&-; echo "status $?"`], { encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } })
  t.same([closed.stdout, closed.stderr], ['status 0\n', ''])
  t.equal(r.stderr, '', 'no stack trace')
})

t.test('a short command does not load Node\'s stream machinery, perf_hooks or node:module', async t => {
  // process.stdout would load streams: qimg writes to the descriptors itself
  // (src/cli/output.ts); the global performance, which lru-cache reads as it
  // loads, would load perf_hooks: the bundle gives it a stand-in (scripts/bundle.mjs);
  // createRequire would load node:module: the bundle has a shim (scripts/bundle-shims)
  const probe = path.join(t.testdir(), 'probe.cjs')
  fs.writeFileSync(probe, `process.on("exit", () => require("fs").writeSync(2, ["stream", "perf_hooks", "module"].filter(m => process.moduleLoadList.includes("NativeModule " + m)).join(",") + "\\n"))\n`)
  // (through nodeCommand: tap adds its own NODE_OPTIONS to every child, and its hooks load streams themselves)
  const env = { PATH: process.env.PATH }
  const r = spawnSync(...nodeCommand(['--interrupt-budget=1000000', '-r', probe, path.join(ROOT, 'bin/qemu-img.js'), 'info', path.join(ROOT, 'fixtures/demo.qcow2')]), { encoding: 'utf8', env })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /file format: qcow2/)
  t.equal(r.stderr, '\n', 'none is loaded')
})

t.test('bulk-data commands ask for SCHED_BATCH before their I/O threads start', async t => {
  const { preferThroughput } = await import('../src/io/scheduling.js')
  const policy = (): number => Number(fs.readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' ')[38])
  preferThroughput()
  t.equal(policy(), 3, 'SCHED_BATCH (3) for the calling thread')
  const { default: Convert } = await import('../commands/convert.js')
  const { default: Info } = await import('../commands/info.js')
  t.equal((Convert as unknown as { throughput: boolean }).throughput, true)
  t.equal((Info as unknown as { throughput: boolean }).throughput, false)
})

t.test('bulk-data commands size libuv\'s pool to the CPUs, from 2 to 4, unless the user chose a size', async t => {
  const { threadPoolSize } = await import('../src/io/scheduling.js')
  t.equal(threadPoolSize({}, 1), '2')
  t.equal(threadPoolSize({}, 2), '2')
  t.equal(threadPoolSize({}, 3), '3')
  t.equal(threadPoolSize({}, 64), '4')
  t.equal(threadPoolSize({}, undefined), undefined, 'unknown CPU count: libuv\'s default')
  t.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '7' }, 2), undefined, 'the user\'s choice stands')
  // through the bins: the threads a convert ends with, and the size it asked for
  const dir = t.testdir()
  const probe = path.join(dir, 'probe.cjs')
  fs.writeFileSync(probe, 'process.on("exit", () => require("fs").writeSync(2, require("fs").readdirSync("/proc/self/task").length + " " + process.env.UV_THREADPOOL_SIZE + "\\n"))\n')
  const src = path.join(ROOT, 'fixtures/demo.qcow2')
  const run = (extra: NodeJS.ProcessEnv): string[] => {
    const r = spawnSync(...nodeCommand(['-r', probe, path.join(ROOT, 'bin/qemu-img.js'), 'convert', '-O', 'raw', src, path.join(dir, 'out.raw')]), { encoding: 'utf8', env: { PATH: process.env.PATH, ...extra } })
    t.equal(r.status, 0, r.stderr)
    return r.stderr.trim().split(' ')
  }
  const [threads, size] = run({})
  const [threads4, size4] = run({ UV_THREADPOOL_SIZE: '4' })
  const want = Math.max(2, Math.min(4, (await import('node:os')).availableParallelism()))
  t.equal(size, String(want))
  t.equal(size4, '4')
  t.equal(Number(threads4) - Number(threads), 4 - want, 'the pool has that many threads')
})

t.test('the bundle is plain ASCII', async t => {
  // a single other character (an em dash in a comment esbuild keeps) makes
  // Node read the 600 KiB source as a two-byte string: ~3 ms more per start
  const text = fs.readFileSync(path.join(ROOT, 'dist/qimg.cjs'), 'latin1')
  const at = text.search(/[^\x00-\x7f]/)
  t.equal(at, -1, at < 0 ? 'ASCII' : `non-ASCII near: ${text.slice(Math.max(0, at - 60), at + 20)}`)
})

t.test('a finished command ends without Node\'s teardown, with its exit status, after every other exit listener', async t => {
  // the probe wraps the addon's exitNow as the bundle loads it (process.dlopen), and adds an
  // 'exit' listener of its own before qimg starts
  const dir = t.testdir()
  const probe = path.join(dir, 'probe.cjs')
  fs.writeFileSync(probe, `
const fs = require('fs'), dlopen = process.dlopen
process.on('exit', code => fs.writeSync(2, 'listener ' + code + '\\n'))
process.dlopen = function (module, filename, ...rest) {
  dlopen.call(this, module, filename, ...rest)
  if (!String(filename).endsWith('qimg_native.node')) return
  // (the addon's own properties are read-only: hand out a wrapper)
  const m = module.exports
  module.exports = Object.create(m, { exitNow: { value: code => { fs.writeSync(2, 'exitNow ' + code + '\\n'); m.exitNow(code) } } })
}
`)
  const a = path.join(dir, 'a.qcow2')
  const b = path.join(dir, 'b.qcow2')
  for (const f of [a, b]) t.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '1M']).status, 0)
  t.equal(spawnSync('qemu-io', ['-c', 'write -P 1 0 4k', b]).status, 0)
  const run = (...args: string[]) => spawnSync(...nodeCommand(['--interrupt-budget=1000000', '-r', probe, path.join(ROOT, 'bin/qemu-img.js'), ...args]), { encoding: 'utf8', env: { PATH: process.env.PATH } })
  const cases: Array<[string[], number, string]> = [
    [['info', a], 0, ''],
    [['compare', a, b], 1, 'Content mismatch at offset 0!\n'],
    [['info', path.join(dir, 'missing')], 1, ''],
    [['nosuch'], 1, ''],
  ]
  for (const [args, status, stdout] of cases) {
    const r = run(...args)
    t.equal(r.status, status, args.join(' '))
    if (stdout) t.equal(r.stdout, stdout)
    // qimg's messages, then the probe's listener, then exitNow with the same status
    t.match(r.stderr, new RegExp(`listener ${status}\\nexitNow ${status}\\n$`), args.join(' '))
  }
  // asked for a CPU profile, which Node writes as it tears down, qimg leaves that to Node
  const profiles = path.join(dir, 'profiles')
  const profiled = spawnSync(...nodeCommand(['--interrupt-budget=1000000', '--cpu-prof', `--cpu-prof-dir=${profiles}`, path.join(ROOT, 'bin/qemu-img.js'), 'info', a]), { encoding: 'utf8', env: { PATH: process.env.PATH } })
  t.equal(profiled.status, 0, profiled.stderr)
  t.equal(fs.readdirSync(profiles).filter(f => f.endsWith('.cpuprofile')).length, 1, 'the profile is written')
  // exitNow itself: the process ends there
  const direct = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ROOT, 'build/Release/qimg_native.node'))}).exitNow(7); console.log('not reached')`], { encoding: 'utf8' })
  t.equal(direct.status, 7)
  t.equal(direct.stdout, '')
})
