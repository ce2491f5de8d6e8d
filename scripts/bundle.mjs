#!/usr/bin/env node
// Build step after tsc (`npm run build`): put the CLI — dist/src/cli/main.js
// and every module it imports, lazy ones included — into one CommonJS file,
// dist/qimg.cjs, then record V8's code cache for it in dist/qimg.cjs.cache.
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
  // the modules ask import.meta.url where they are (createRequire, the
  // project root): in the bundle that is the bundle's own file
  define: { 'import.meta.url': '__qimgBundleUrl' },
  banner: { js: 'const __qimgBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
})

// The code cache holds what V8 compiled while running typical commands on
// the demo image, in one process: the top level of every module, and the
// functions that open, read, map, check, measure, compare, create and
// convert (qcow2 to raw and back). Anything else compiles lazily, as usual.
fs.rmSync(OUT + '.cache', { force: true })
const demo = path.join(ROOT, 'fixtures/demo.qcow2')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qimg-cache-'))
const t = name => path.join(tmp, name)
const runs = [
  ['info', demo], ['info', '--output=json', demo], ['map', '--output=json', demo],
  ['check', demo], ['measure', '-O', 'qcow2', demo],
  ['convert', '-O', 'raw', demo, t('a.raw')],
  ['convert', '-O', 'qcow2', t('a.raw'), t('b.qcow2')],
  ['compare', demo, t('b.qcow2')],
  ['create', '-q', '-f', 'qcow2', t('c.qcow2'), '64M'],
]
try {
  execFileSync(process.execPath, [path.join(ROOT, 'bin/run.js')], {
    env: { ...process.env, QIMG_WRITE_CODE_CACHE: '1', QIMG_CODE_CACHE_RUNS: JSON.stringify(runs) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
} finally {
  fs.rmSync(tmp, { recursive: true, force: true })
}
if (!fs.existsSync(OUT + '.cache')) throw new Error('bundle.mjs: no code cache was written')
