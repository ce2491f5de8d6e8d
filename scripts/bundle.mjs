#!/usr/bin/env node
// Build step after tsc (`npm run build`): put the CLI — dist/src/cli/main.js
// and every module it imports, lazy ones included — into one CommonJS file,
// dist/qimg.cjs, then record V8's code caches for it in dist/code-cache/.
//
// Why: a qimg command used to spend ~40 ms over bare `node` start-up, most of
// it in Node's ES module loader resolving, reading and compiling 40 files one
// by one. One file, compiled from a code cache, starts about 25 ms sooner
// (bin/launch.cjs loads it). tsc's output in dist/ stays as it is: oclif's
// manifest, the mount server process and anything importing the modules use it.
//
// The native addons stay outside the bundle: fuse-native and zstd-napi are
// loaded from node_modules and qimg's own from build/ (src/io/native.ts finds
// it from the project root, as it does from tsc's output).
import { build } from 'esbuild'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const OUT = path.join(ROOT, 'dist/qimg.cjs')

await build({
  entryPoints: [path.join(ROOT, 'dist/src/cli/main.js')],
  outfile: OUT,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['fuse-native', 'zstd-napi', '*.node'],
  alias: {
    'node:module': path.join(ROOT, 'scripts/bundle-shims/node-module.cjs'),
    'node:diagnostics_channel': path.join(ROOT, 'scripts/bundle-shims/diagnostics-channel.cjs'),
  },
  // the modules ask import.meta.url where they are (createRequire, the
  // project root): in the bundle that is the bundle's own file
  // Node's global `performance` loads perf_hooks (about a millisecond) the
  // first time anything reads it, and lru-cache reads it as it loads, on
  // every command. The bundle sees a stand-in that reads it on first use:
  // only convert -r and snapshot -c ever do.
  define: { 'import.meta.url': '__qimgBundleUrl', performance: '__qimgPerformance' },
  banner: {
    js: 'const __qimgBundleUrl = require("node:url").pathToFileURL(__filename).href;\n' +
      'const __qimgPerformance = { now: () => globalThis.performance.now(), get timeOrigin () { return globalThis.performance.timeOrigin } };',
  },
  // minified: V8 reads, hashes and (for functions outside the code cache)
  // parses half the bytes; a command starts ~1.5 ms sooner. Stack traces
  // then name minified functions: QIMG_NO_MINIFY=1 npm run build makes a
  // readable bundle to debug with.
  minify: process.env.QIMG_NO_MINIFY !== '1',
  logLevel: 'warning',
})

// Each code cache holds what V8 compiled while running typical commands on
// the demo image: the top level of every module, and the functions those
// commands ran. One per command below, recorded in a process of its own
// (bin/launch.cjs picks it by the command line), and one of all of them
// together for any other command. Anything else compiles lazily, as usual.
const CACHES = path.join(ROOT, 'dist/code-cache')
fs.rmSync(CACHES, { recursive: true, force: true })
fs.mkdirSync(CACHES)
const demo = path.join(ROOT, 'fixtures/demo.qcow2')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-cache-'))
const t = name => path.join(tmp, name)
const RUNS = {
  info: [['info', demo], ['info', '--output=json', demo]],
  map: [['map', '--output=json', demo]],
  check: [['check', demo], ['check', '--output=json', demo]],
  measure: [['measure', '-O', 'qcow2', demo]],
  convert: [['convert', '-O', 'raw', demo, t('a.raw')], ['convert', '-O', 'qcow2', t('a.raw'), t('b.qcow2')]],
  // (bin/launch.cjs takes this one for converts into raw)
  'convert-raw': [['convert', '-O', 'raw', demo, t('r.raw')]],
  compare: [['compare', demo, demo]],
  create: [['create', '-q', '-f', 'qcow2', t('c.qcow2'), '64M']],
}
function record (file, runs) {
  execFileSync(process.execPath, [path.join(ROOT, 'bin/run.js')], {
    env: { ...process.env, QIMG_WRITE_CODE_CACHE: file, QIMG_CODE_CACHE_RUNS: JSON.stringify(runs) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  if (!fs.existsSync(file)) throw new Error(`bundle.mjs: no code cache was written to ${file}`)
}
try {
  for (const [command, runs] of Object.entries(RUNS)) record(path.join(CACHES, command), runs)
  record(path.join(CACHES, 'all'), Object.entries(RUNS).filter(([name]) => name !== 'convert-raw').flatMap(([, runs]) => runs))
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}
