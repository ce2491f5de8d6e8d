// One mount's life: build the views and the tree over an opened image,
// mount them with fuse-native, and on stop unmount, flush and close. The
// caller (the mount command's foreground process or its background server)
// opens the image and owns signals and the pid file.
import { statSync } from 'node:fs'
import { BlockError } from '../src/cli/errors.js'
import type { ClusterCache } from '../src/block/cache.js'
import type { Image, SnapshotSpec } from '../src/block/types.js'
import type { View } from './view.js'
import { ReadOnlyView } from './views/read-only.js'
import { MountTree, snapshotFileName, type SnapshotSource } from './tree.js'
import { fuseOperations, type FuseOperations } from './server.js'
import { openOverlay } from './overlay.js'
import { FS_TYPE, findMount, fusermount, loadFuse, realOrResolved } from './runtime.js'

export interface ServeOptions {
  /** the opened image with its backing chain (writable only for --writable) */
  image: Image
  mountPoint: string
  overlay?: string
  writable?: boolean
  snapshot?: SnapshotSpec
  allowOther?: boolean
  clusterCache: ClusterCache
  metadataCache: ClusterCache
  warn: (message: string) => void
  /** unexpected failures while serving (EIO to the caller) */
  onError?: (message: string) => void
}

function fileTime (name: string): Date {
  try { return statSync(name).mtime } catch { return new Date() }
}

/** fsname shows as the mount's source (mount, df): the image; commas would split the option string */
function sourceLabel (name: string): string {
  return name.replace(/[,\\\s]/g, '_') || 'qimg'
}

/** "ID_OR_NAME" or "snapshot.id=ID,snapshot.name=NAME", as qemu-img convert -l takes it */
export function parseSnapshotParam (text: string): SnapshotSpec {
  if (!text.startsWith('snapshot.')) return { name: text }
  const spec: SnapshotSpec = {}
  for (const part of text.split(',')) {
    const eq = part.indexOf('=')
    const key = part.slice(0, eq)
    if (key === 'snapshot.id') spec.id = part.slice(eq + 1)
    else if (key === 'snapshot.name') spec.name = part.slice(eq + 1)
    else throw new BlockError(`Invalid snapshot parameter '${part}'`, 'EINVAL')
  }
  return spec
}

async function openSnapshotView (image: Image, spec: SnapshotSpec): Promise<View> {
  if (!image.openSnapshot || !image.listSnapshots) throw new BlockError(`Failed to load snapshot: ${image.format} images have no internal snapshots`, 'ENOTSUP')
  const list = image.listSnapshots()
  // a bare word is an id first, then a name (as qemu looks it up)
  const found = spec.id !== undefined
    ? list.find(s => s.id === spec.id && (spec.name === undefined || s.name === spec.name))
    : list.find(s => s.id === spec.name) ?? list.find(s => s.name === spec.name)
  if (!found) throw new BlockError('Failed to load snapshot: Can\'t find snapshot', 'ENOENT')
  return image.openSnapshot({ id: found.id, name: found.name })
}

export class MountServer {
  private stopping?: Promise<void>

  private constructor (
    readonly mountPoint: string,
    readonly tree: MountTree,
    private readonly top: Image,
    private readonly ops: FuseOperations,
  ) {}

  static async start (o: ServeOptions): Promise<MountServer> {
    const { image } = o
    if (o.snapshot && (o.overlay || o.writable)) throw new BlockError('--snapshot views are read-only: they cannot be combined with --overlay or --writable', 'EINVAL')
    let top = image
    let disk: View
    if (o.overlay) {
      top = await openOverlay(o.overlay, image, o, o.warn)
      disk = top
    } else if (o.writable) {
      disk = image
    } else if (o.snapshot) {
      disk = new ReadOnlyView(await openSnapshotView(image, o.snapshot))
    } else {
      disk = new ReadOnlyView(image)
    }
    try {
      const layers: Array<{ view: View, time: Date }> = []
      for (let img: Image | null = image; img; img = img.backing) layers.push({ view: img, time: fileTime(img.filename) })
      const snapshots: SnapshotSource[] = (image.listSnapshots?.() ?? []).map(s => ({
        name: snapshotFileName(s.name, s.id),
        date: new Date(s.dateSec * 1000 + Math.floor(s.dateNsec / 1e6)),
        open: () => image.openSnapshot!({ id: s.id, name: s.name }),
      }))
      const details = await image.details()
      const tree = new MountTree({
        disk,
        diskTime: fileTime(top.filename),
        layers,
        snapshots,
        blockSize: Math.max(details.clusterSize ?? 0, 65536),
      })
      const readOnly = disk.readOnly
      const ops = fuseOperations(tree, {
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        readOnly,
        mountTime: new Date(),
        onError: (op, path, err) => o.onError?.(`${op} ${path}: ${(err as Error)?.message ?? String(err)}`),
      })
      const Fuse = loadFuse()
      // big_writes (128 KiB writes instead of 4 KiB) and ro have no fuse-native
      // option: they ride along in fsname, which fuse-native passes in -o
      const extra = ['big_writes', ...(readOnly ? ['ro'] : [])]
      const fuse = new Fuse(o.mountPoint, ops.ops, {
        fsname: [sourceLabel(realOrResolved(image.filename)), ...extra].join(','),
        subtype: 'qimg',
        autoUnmount: true,
        allowOther: o.allowOther ?? false,
        defaultPermissions: true,
        // a read-only mount never changes what it serves, so the kernel may
        // keep file pages across opens: a second read runs at page-cache
        // speed. Writable mounts drop them at each open, because views
        // alias (a write to partitions/1.raw changes disk.raw's bytes).
        kernelCache: readOnly,
        timeout: false,
      })
      await new Promise<void>((resolve, reject) => fuse.mount(err => {
        if (!err) return resolve()
        reject(new BlockError(`Failed to mount on '${o.mountPoint}': ${err.message}`, 'EIO'))
      }))
      return new MountServer(o.mountPoint, tree, top, ops)
    } catch (e) {
      if (top !== image) {
        top.backing = null // the caller closes the image
        await top.close().catch(() => undefined)
      }
      throw e
    }
  }

  /** Is the kernel mount still there? (from the mount table: never touch the mount itself) */
  mounted (): boolean {
    return findMount(this.mountPoint)?.fsType === FS_TYPE
  }

  /**
   * Unmount (lazily if files are still open), then flush and close the
   * images. `qimg umount` unmounts first and then asks for this.
   */
  stop (): Promise<void> {
    this.stopping ??= (async () => {
      if (this.mounted()) {
        const busy = await fusermount(this.mountPoint, false)
        if (busy !== undefined && this.mounted()) await fusermount(this.mountPoint, true)
      }
      this.ops.stop()
      try {
        await this.tree.disk.view.flush()
      } finally {
        await this.top.close()
      }
    })()
    return this.stopping
  }
}
