// Entry point shared by bin/run.js (qimg) and bin/qemu-img.js (qemu-img):
// qemu-img's global options (-h, -V, -T) come before the command name; the
// command is then looked up in the command table (commands.ts, kept equal to
// oclif's manifest) and only its module is imported. We do not load
// @oclif/core's Config at run time: it costs ~100 ms per invocation, more
// than all of `qimg info`'s own work.
import { getopt } from './getopt.js'
import { COMMANDS } from './commands.js'
import { UsageError } from './errors.js'
import { setProgramName } from './program.js'
import { reportError } from './command.js'
import { out } from './output.js'
import { native } from '../io/native.js'

export async function main (argv: string[], program: string): Promise<void> {
  setProgramName(program)
  try {
    const parsed = getopt(argv, {
      short: 'hVT:',
      long: { help: { arg: 'none', short: 'h' }, version: { arg: 'none', short: 'V' }, trace: { arg: 'required', short: 'T' } },
      stopAtNonOption: true,
    })
    for (const o of parsed.opts) {
      if (o.name === 'h') { out((await import('./help.js')).helpText()); return }
      if (o.name === 'V') { out((await import('./help.js')).versionText()); return }
      // -T: tracing is accepted and ignored (qimg has no trace events)
    }
    if (parsed.args.length === 0) throw new UsageError('Not enough arguments')
    const [command, ...rest] = parsed.args
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined
    if (!load) throw new UsageError(`Command not found: ${command}`)
    await (await load()).default.run(rest)
  } catch (e) {
    reportError(e)
  }
}

/**
 * Called by the bins once the event loop is empty (process 'exit'), after
 * main has settled: everything qimg does is done by then (its output is
 * written with write(2), its files are closed, its I/O awaited), and what
 * Node would still do is tear down its heap, free every buffer and join its
 * threads, 4-6 ms that the kernel does better in one go. So end the process
 * right there, with `code`. Without the addon, Node ends it as usual.
 */
export function exitWithoutTeardown (code: number): void {
  native()?.exitNow?.(code)
}
