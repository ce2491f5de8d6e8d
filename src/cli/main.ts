// Entry point shared by bin/run.js (qimg) and bin/qemu-img.js (qemu-img):
// qemu-img's global options (-h, -V, -T) come before the command name; the
// command is then looked up in oclif's manifest (oclif.manifest.json, made by
// `oclif manifest` at build time) and only its module is imported. We do not
// load @oclif/core's Config at run time: it costs ~100 ms per invocation,
// more than all of `qimg info`'s own work.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { getopt } from './getopt.js'
import { UsageError } from './errors.js'
import { setProgramName } from './program.js'
import { reportError } from './command.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

export async function main (argv: string[], program: string): Promise<void> {
  setProgramName(program)
  try {
    const parsed = getopt(argv, {
      short: 'hVT:',
      long: { help: { arg: 'none', short: 'h' }, version: { arg: 'none', short: 'V' }, trace: { arg: 'required', short: 'T' } },
      stopAtNonOption: true,
    })
    for (const o of parsed.opts) {
      if (o.name === 'h') { process.stdout.write((await import('./help.js')).helpText()); return }
      if (o.name === 'V') { process.stdout.write((await import('./help.js')).versionText()); return }
      // -T: tracing is accepted and ignored (qimg has no trace events)
    }
    if (parsed.args.length === 0) throw new UsageError('Not enough arguments')
    const [command, ...rest] = parsed.args
    const entry = /^[a-z]+$/.test(command) ? loadManifest().commands[command] : undefined
    if (!entry) throw new UsageError(`Command not found: ${command}`)
    const mod = await import(pathToFileURL(path.join(ROOT, ...entry.relativePath)).href) as { default: { run(argv: string[]): Promise<void> } }
    await mod.default.run(rest)
  } catch (e) {
    reportError(e)
  }
}

interface Manifest { commands: Record<string, { relativePath: string[] }> }

function loadManifest (): Manifest {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as Manifest
}
