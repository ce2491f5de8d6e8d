// Entry point shared by bin/run.js (qimg) and bin/qemu-img.js (qemu-img):
// qemu-img's global options (-h, -V, -T) come before the command name, then
// oclif loads and runs the command from the manifest.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { getopt } from './getopt.js'
import { UsageError } from './errors.js'
import { helpText, versionText } from './help.js'
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
      if (o.name === 'h') { process.stdout.write(helpText()); return }
      if (o.name === 'V') { process.stdout.write(versionText()); return }
      // -T: tracing is accepted and ignored (qimg has no trace events)
    }
    if (parsed.args.length === 0) throw new UsageError('Not enough arguments')
    const [command, ...rest] = parsed.args
    const { Config } = await import('@oclif/core')
    const config = await Config.load({ root: ROOT })
    if (!/^[a-z]+$/.test(command) || !config.findCommand(command)) throw new UsageError(`Command not found: ${command}`)
    await config.runCommand(command, rest)
  } catch (e) {
    reportError(e)
  }
}
