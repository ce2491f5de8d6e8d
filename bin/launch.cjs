// Starts qimg from the one-file bundle dist/qimg.cjs (see scripts/bundle.mjs),
// compiled from one of V8's code caches for it: V8 then skips parsing and
// compiling what the cache holds. A command the build recorded a cache for
// (dist/code-cache/COMMAND; converts into raw: convert-raw) starts from that
// one; any other from the cache of all of them (dist/code-cache/all). V8
// deserializes a whole cache before running anything, so a command's own,
// holding only what it ran, starts sooner (info: ~2 ms of ~14). V8 checks a
// cache against the source and its own version and flags, and ignores a
// stale one (qimg then starts as fast as without it).
// QIMG_WRITE_CODE_CACHE=FILE makes this run start without a cache and write
// one to FILE at exit; the build does that.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')

const V8_FLAG = '--interrupt-budget=1000000'

const DIST = path.join(__dirname, '..', 'dist')

/** The code cache for a command line: its command's own, or the one of all commands. */
function cacheFile (argv) {
  // the first word that is not an option; a command name is lower-case letters
  const at = argv.findIndex(a => !a.startsWith('-'))
  const command = argv[at]
  let own = command && /^[a-z]+$/.test(command) ? command : null
  // a convert into raw (the default) runs none of the other formats' write
  // paths: its own cache, a quarter smaller, starts it ~0.8 ms sooner
  if (own === 'convert' && targetFormat(argv.slice(at + 1)) === 'raw') own = 'convert-raw'
  const file = own && path.join(DIST, 'code-cache', own)
  return file && fs.existsSync(file) ? file : path.join(DIST, 'code-cache', 'all')
}

/**
 * convert's -O value, as its option parser would find it in most command
 * lines (-O FMT, -OFMT, or last in a group like -cO FMT); 'raw' without one.
 * Only a cache is chosen by it: a line it misreads starts a little slower.
 */
function targetFormat (args) {
  let format = 'raw'
  for (let i = 0; i < args.length; i++) {
    const m = /^-[a-zA-Z]*O(.*)$/.exec(args[i])
    if (m && !args[i].startsWith('--')) format = m[1] !== '' ? m[1] : args[++i]
  }
  return format
}

/**
 * Compile dist/qimg.cjs, from the code cache for `argv` if V8 takes it, or
 * from none (`cache` null); null if the bundle is missing.
 */
function compileBundle (argv = [], cache = cacheFile(argv)) {
  // V8 optimizes a function once it has run a while; its default budget suits
  // long-lived servers, and a command's whole life is a few hundred ms: it
  // spent ~100 ms of CPU compiling lukewarm code on the other core, which
  // the copy's I/O threads wanted. A budget 8x larger keeps that for truly
  // hot loops (measured: compressed convert -20%, zstd -c -14%, JS ciphers
  // +3%). Set before compiling: V8 takes a code cache only under the flags
  // it was made with.
  // (The bins pass it on node's command line, which spares loading node:v8.)
  if (!process.execArgv.includes(V8_FLAG)) require('node:v8').setFlagsFromString(V8_FLAG)
  const file = path.join(DIST, 'qimg.cjs')
  let source
  // latin1: the bundle is ASCII (a test sees to it), and this decoding is the cheapest
  try { source = fs.readFileSync(file, 'latin1') } catch { return null }
  let cachedData
  if (cache) try { cachedData = fs.readFileSync(cache) } catch {}
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData })
  return { file, script, cache, cached: cachedData !== undefined && !script.cachedDataRejected }
}

function launch (program) {
  const argv = process.argv.slice(2)
  // recording a cache starts from none: one read would end up in it whole
  const writeCache = process.env.QIMG_WRITE_CODE_CACHE
  const bundle = compileBundle(argv, writeCache ? null : cacheFile(argv))
  if (!bundle) {
    process.stderr.write(`${program}: qimg is not built (dist/qimg.cjs is missing): run npm run build\n`)
    process.exit(1)
  }
  const { file, script } = bundle
  if (writeCache) process.on('exit', () => fs.writeFileSync(writeCache, script.createCachedData()))
  const mod = { exports: {} }
  // the bundle's require is this file's: it finds the same packages (bin/ and
  // dist/ are both in the project), without loading node:module for createRequire
  script.runInThisContext().call(mod.exports, mod.exports, require, mod, file, path.dirname(file))
  // the build records a cache after a few typical commands run in this one
  // process (QIMG_CODE_CACHE_RUNS, a JSON list of argument lists), so that
  // what they compiled is in it
  const runs = writeCache && process.env.QIMG_CODE_CACHE_RUNS
  if (runs) return warmUp(mod.exports.main, JSON.parse(runs), program)
  return mod.exports.main(argv, program).then(() => {
    // registered now, so that it comes after any other 'exit' listener
    if (!teardownWrites()) process.once('exit', code => mod.exports.exitWithoutTeardown(code))
  })
}

/** Whether Node was asked for something it writes out as it tears down: coverage, profiles, trace events. */
function teardownWrites () {
  const options = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ')
  return !!process.env.NODE_V8_COVERAGE || /--(cpu-prof|heap-prof|prof|trace-event)/.test(options)
}

async function warmUp (main, runs, program) {
  for (const argv of runs) {
    await main(argv, program)
    if (process.exitCode) throw new Error(`code cache warm-up: ${argv.join(' ')} failed (exit code ${process.exitCode})`)
  }
}

module.exports = { launch, compileBundle, cacheFile }
