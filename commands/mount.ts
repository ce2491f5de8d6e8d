import { QemuCommand } from '../src/cli/command.js'
import type { OptionSpec, ParsedArgs } from '../src/cli/getopt.js'
import { QemuError, UsageError } from '../src/cli/errors.js'
import { secretsFromObjects } from '../src/cli/image-args.js'
import { parseSize } from '../src/cli/sizes.js'
import { err } from '../src/cli/output.js'
import { programName } from '../src/cli/program.js'
import { MOUNT_SYNTAX } from '../src/cli/help.js'
import { checkFuseAvailable, checkMountPoint } from '../fuse/runtime.js'
import type { MountRequest } from '../src/cli/mount-run.js'

const DEFAULT_CACHE_SIZE = 64 << 20

/**
 * mount's errors are one line (qemu's two-line lock message included), so
 * scripts and service managers log them whole.
 */
function oneLine (e: unknown): unknown {
  if (!(e instanceof Error) || !e.message.includes('\n')) return e
  const text = e.message.split('\n').map(l => l.trim()).filter(Boolean)
    .reduce((acc, l) => acc + (/[.?!:]$/.test(acc) ? ' ' : '. ') + l)
  return new QemuError(text)
}

export default class Mount extends QemuCommand {
  static override description = 'Serve a disk image (its snapshots, chain layers and partitions) as raw files over FUSE'
  static override options: OptionSpec = {
    short: ':f:U',
    long: {
      format: { arg: 'required', short: 'f' },
      'image-opts': { arg: 'none' },
      object: { arg: 'required' },
      snapshot: { arg: 'required' },
      overlay: { arg: 'required' },
      writable: { arg: 'none' },
      'cache-size': { arg: 'required' },
      'allow-other': { arg: 'none' },
      foreground: { arg: 'none' },
      'force-share': { arg: 'none', short: 'U' },
    },
  }

  protected override helpText (): string {
    const usage = MOUNT_SYNTAX.split('\n').find(l => l.trim().startsWith('mount '))!.trim()
    return `usage: ${programName()} ${usage}\n\n` +
      'Serve a disk image as raw files over FUSE. The mount point shows:\n' +
      '  disk.raw             the image as the guest sees it (or the --snapshot one)\n' +
      '  snapshots/NAME.raw   every internal snapshot (read-only)\n' +
      '  layers/N.raw         the backing chain seen from depth N down (read-only)\n' +
      '  partitions/N.raw     each MBR or GPT partition of disk.raw\n\n' +
      'Everything is read-only unless --overlay or --writable is given.\n' +
      '  -f fmt               image format (probed when absent)\n' +
      '  --image-opts         filename is an option string (driver=...,file.filename=...)\n' +
      '  --object objectdef   secret for an encrypted image\n' +
      '  --snapshot name      show internal snapshot name as disk.raw (ID_OR_NAME, or\n' +
      '                       snapshot.id=ID,snapshot.name=NAME)\n' +
      '  --overlay file       send writes into a qcow2 overlay backed by the image\n' +
      '                       (created if missing, reused if present)\n' +
      '  --writable           write into the image itself\n' +
      '  --cache-size size    cache of decompressed/decrypted clusters (default 64M)\n' +
      '  --allow-other        let other users use the mount\n' +
      '  --foreground         serve from this process instead of a background one\n' +
      '  -U                   open the image even if another process uses it\n\n' +
      `Unmount with '${programName()} umount mountpoint'.\n`
  }

  protected async exec ({ opts, args }: ParsedArgs): Promise<number> {
    let format: string | undefined
    let imageOpts = false
    const objects: string[] = []
    let snapshot: string | undefined
    let overlay: string | undefined
    let writable = false
    let cacheSize = DEFAULT_CACHE_SIZE
    let allowOther = false
    let foreground = false
    let forceShare = false
    for (const o of opts) {
      switch (o.name) {
        case 'f': format = o.value; break
        case 'image-opts': imageOpts = true; break
        case 'object': objects.push(o.value!); break
        case 'snapshot': snapshot = o.value; break
        case 'overlay': overlay = o.value; break
        case 'writable': writable = true; break
        case 'cache-size':
          try { cacheSize = parseSize(o.value!) } catch { throw new QemuError(`Invalid cache size specified: '${o.value}'`) }
          break
        case 'allow-other': allowOther = true; break
        case 'foreground': foreground = true; break
        case 'U': forceShare = true; break
      }
    }
    if (args.length !== 2) throw new UsageError('Expecting an image file name and a mount point')
    if (imageOpts && format !== undefined) throw new QemuError('--image-opts and --format are mutually exclusive')
    if (overlay !== undefined && writable) throw new QemuError('--overlay and --writable are mutually exclusive')
    if (snapshot !== undefined && (overlay !== undefined || writable)) {
      throw new QemuError('--snapshot views are read-only: they cannot be combined with --overlay or --writable')
    }
    secretsFromObjects(objects) // refuse bad --object definitions here, not in the server
    checkFuseAvailable({ allowOther })
    const req: MountRequest = {
      image: args[0], format, imageOpts, objects, snapshot, overlay, writable, cacheSize, allowOther, forceShare,
      mountPoint: checkMountPoint(args[1]),
    }
    const { runMount, spawnMountDaemon } = await import('../src/cli/mount-run.js')
    if (!foreground) {
      await spawnMountDaemon(req, err).catch(e => { throw oneLine(e) })
      return 0
    }
    const { done } = await runMount(req, { warn: err, log: text => err(`${programName()}: ${text}\n`) }).catch(e => { throw oneLine(e) })
    await done
    // fuse-native keeps a libuv handle referenced even after the unmount:
    // everything is flushed and closed, so leave explicitly
    process.exit(process.exitCode ?? 0)
  }
}
