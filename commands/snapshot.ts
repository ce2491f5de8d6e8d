import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { UsageError } from '../src/cli/errors.js'
import type { Image } from '../src/block/types.js'
import { openForCommand, secretsFromObjects } from '../src/cli/image-args.js'
import { snapshotTable } from '../src/cli/render/snapshots.js'
import { err, out } from '../src/cli/output.js'
import { snapshotToQapi } from '../src/ops/info.js'
import { applySnapshot, createSnapshot, deleteSnapshot, listSnapshots } from '../src/ops/snapshot.js'

type Action = 'l' | 'a' | 'c' | 'd'

export default class Snapshot extends QemuCommand {
  static override description = 'List, apply, create or delete snapshots in image'
  static override options: OptionSpec = {
    short: ':la:c:d:qU',
    long: {
      object: { arg: 'required' },
      'image-opts': { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let action: Action | undefined
    let name = ''
    let imageOpts = false
    let forceShare = false
    const objects: string[] = []
    for (const o of opts) {
      switch (o.name) {
        case 'l': case 'a': case 'c': case 'd':
          if (action !== undefined) throw new UsageError('Cannot mix \'-l\', \'-a\', \'-c\', \'-d\'')
          action = o.name
          name = o.value ?? ''
          break
        case 'q': break // nothing the command prints is silenced by -q
        case 'object': objects.push(o.value!); break
        case 'image-opts': imageOpts = true; break
        case 'U': forceShare = true; break
      }
    }
    if (args.length !== 1) throw new UsageError('Expecting one image file name')
    const secrets = secretsFromObjects(objects)
    const warnings: string[] = []
    const img = await openForCommand({ name: args[0], imageOpts }, {
      secrets,
      forceShare,
      readOnly: action === 'l',
      onWarning: (m) => { warnings.push(m); err(m) },
    })
    try {
      await this.perform(img, action, name, warnings)
    } catch (e) {
      await img.close().catch(() => undefined)
      throw e
    }
    await img.close()
    return 0
  }

  private async perform (img: Image, action: Action | undefined, name: string, warnings: string[]): Promise<void> {
    switch (action) {
      case 'l': {
        const snaps = listSnapshots(img)
        // (-q does not silence the list)
        if (snaps.length > 0) out('Snapshot list:\n' + snapshotTable(snaps.map(snapshotToQapi)))
        break
      }
      case 'c': await createSnapshot(img, name); break
      case 'a':
        // qemu reopens an image whose driver has no snapshots to try the
        // file below it, so the probed-raw warning comes a second time
        if (!img.applySnapshot) for (const m of warnings) err(m)
        await applySnapshot(img, name)
        break
      case 'd': await deleteSnapshot(img, name); break
    }
  }
}
