// The base of every qimg command. qemu-img's command lines are parsed with
// getopt (see getopt.ts), not oclif's parser, so that option rules, error
// wording and exit codes match qemu-img's. Commands keep oclif's command
// contract (the statics its manifest records, and a static run(argv)), so
// `oclif manifest` lists them and oclif can run them; but the class does not
// extend @oclif/core's Command: importing @oclif/core costs ~100 ms, which
// would dominate short commands like `info` (see main.ts).
import { getopt, type OptionSpec, type ParsedArgs } from './getopt.js'
import { BlockError, QemuError, QemuErrorLines, UsageError } from './errors.js'
import { err, out, report } from './output.js'
import { programName } from './program.js'
import { preferThroughput } from '../io/scheduling.js'

export abstract class QemuCommand {
  // what oclif's manifest records for a command
  static id?: string
  static description = ''
  static strict = false
  static flags = {}
  static args = {}
  /** the command's options in getopt form; -h/--help are added for every command */
  static options: OptionSpec = { short: '' }
  /** the command moves bulk data: run it under the throughput scheduling policy (see io/scheduling.ts) */
  static throughput = false

  constructor (readonly argv: string[], readonly config?: unknown) {}

  /** oclif's entry point for a command class: run it on argv, reporting errors as qemu-img does */
  static async run (argv: string[] = process.argv.slice(2), config?: unknown): Promise<void> {
    const Cmd = this as unknown as new (argv: string[], config?: unknown) => QemuCommand
    const cmd = new Cmd(argv, config)
    try {
      await cmd.run()
    } catch (e) {
      reportError(e)
    }
  }

  /** run the command with its parsed options; return the exit code */
  protected abstract exec (parsed: ParsedArgs): Promise<number | void>

  async run (): Promise<void> {
    const spec = (this.constructor as typeof QemuCommand).options
    const parsed = getopt(this.argv, {
      ...spec,
      short: spec.short.startsWith(':') ? ':h' + spec.short.slice(1) : 'h' + spec.short,
      long: { help: { arg: 'none', short: 'h' }, ...spec.long },
    })
    if (parsed.opts.some(o => o.name === 'h')) {
      out(await this.helpText())
      return
    }
    if ((this.constructor as typeof QemuCommand).throughput) preferThroughput()
    const code = await this.exec(parsed)
    if (typeof code === 'number' && code !== 0) process.exitCode = code
  }

  /** what -h prints: qemu-img's full help for qemu-img commands (loaded only then) */
  protected helpText (): string | Promise<string> { return import('./help.js').then(m => m.helpText()) }

}

/** Print an error the way qemu-img does and set the exit code. */
export function reportError (e: unknown): void {
  if (e instanceof UsageError) {
    report(e.message)
    err(`Try '${programName()} --help' for more information\n`)
    process.exitCode = 1
  } else if (e instanceof QemuError) {
    if (e instanceof QemuErrorLines) e.lines.forEach(l => report(l))
    else if (e.message) report(e.message)
    if (e.hint) err(e.hint)
    process.exitCode = e.exitCode
  } else if (e instanceof BlockError) {
    report(e.message)
    process.exitCode = 1
  } else {
    const error = e as Error
    report(error?.message ?? String(e))
    if (process.env.QIMG_DEBUG) err(`${error?.stack}\n`)
    process.exitCode = 1
  }
}
