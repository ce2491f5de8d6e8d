import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { UsageError } from '../src/cli/errors.js'
import { programName } from '../src/cli/program.js'
import { unmountServer } from '../fuse/unmount.js'

export default class Umount extends QemuCommand {
  static override description = 'Unmount what qimg mount mounted, after its server has flushed everything'
  static override options: OptionSpec = { short: '' }

  protected override helpText (): string {
    return `usage: ${programName()} umount mountpoint\n\n` +
      'Unmount a qimg mount, then wait until its server has flushed and closed\n' +
      'the image. Refused while a file on the mount is open.\n'
  }

  protected async exec ({ args }: ParsedArgs): Promise<number> {
    if (args.length !== 1) throw new UsageError('Expecting one mount point')
    await unmountServer(args[0])
    return 0
  }
}
