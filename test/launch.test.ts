// How qimg starts: the bins load the one-file bundle through V8's code cache
// (bin/launch.cjs, scripts/bundle.mjs), and commands are found in a static
// table that must list exactly what oclif's manifest lists.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { COMMANDS } from '../src/cli/commands.js'
import { ROOT, qimg } from './helpers/run.js'

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
  const { compileBundle } = require('../bin/launch.cjs') as { compileBundle(): { file: string, cached: boolean } | null }
  const bundle = compileBundle()
  t.ok(bundle, 'dist/qimg.cjs exists')
  t.equal(bundle?.file, path.join(ROOT, 'dist/qimg.cjs'))
  t.ok(bundle?.cached, 'the code cache is there and not rejected')
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
