// Starts qimg from the one-file bundle dist/qimg.cjs (see scripts/bundle.mjs),
// compiled from V8's code cache dist/qimg.cjs.cache when there is one: V8
// then skips parsing and compiling what the cache holds. V8 checks the cache
// against the source and its own version and flags, and ignores a stale one
// (qimg then starts as fast as without it). QIMG_WRITE_CODE_CACHE=1 makes
// this run write the cache at exit; the build does that once.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')
const { createRequire } = require('node:module')

const V8_FLAG = '--interrupt-budget=1000000'

/** Compile dist/qimg.cjs (from the cache if V8 takes it); null if it is missing. */
function compileBundle () {
  // V8 optimizes a function once it has run a while; its default budget suits
  // long-lived servers, and a command's whole life is a few hundred ms: it
  // spent ~100 ms of CPU compiling lukewarm code on the other core, which
  // the copy's I/O threads wanted. A budget 8x larger keeps that for truly
  // hot loops (measured: compressed convert -20%, zstd -c -14%, JS ciphers
  // +3%). Set before compiling: V8 takes a code cache only under the flags
  // it was made with.
  // (The bins pass it on node's command line, which spares loading node:v8.)
  if (!process.execArgv.includes(V8_FLAG)) require('node:v8').setFlagsFromString(V8_FLAG)
  const file = path.join(__dirname, '..', 'dist', 'qimg.cjs')
  let source
  try { source = fs.readFileSync(file, 'utf8') } catch { return null }
  let cachedData
  try { cachedData = fs.readFileSync(file + '.cache') } catch {}
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData })
  return { file, script, cached: cachedData !== undefined && !script.cachedDataRejected }
}

function launch (program) {
  const bundle = compileBundle()
  if (!bundle) {
    process.stderr.write(`${program}: qimg is not built (dist/qimg.cjs is missing): run npm run build\n`)
    process.exit(1)
  }
  const { file, script } = bundle
  const writeCache = process.env.QIMG_WRITE_CODE_CACHE === '1'
  if (writeCache) process.on('exit', () => fs.writeFileSync(file + '.cache', script.createCachedData()))
  const mod = { exports: {} }
  script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file))
  // the build records the cache after a few typical commands run in this
  // one process (QIMG_CODE_CACHE_RUNS, a JSON list of argument lists), so
  // that what they compiled is in it
  const runs = writeCache && process.env.QIMG_CODE_CACHE_RUNS
  if (runs) return warmUp(mod.exports.main, JSON.parse(runs), program)
  return mod.exports.main(process.argv.slice(2), program)
}

async function warmUp (main, runs, program) {
  for (const argv of runs) {
    await main(argv, program)
    if (process.exitCode) throw new Error(`code cache warm-up: ${argv.join(' ')} failed (exit code ${process.exitCode})`)
  }
}

module.exports = { launch, compileBundle }
