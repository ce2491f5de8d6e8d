// The directory tree a mount shows:
//   disk.raw               the image (or --snapshot), writable with --overlay/--writable
//   snapshots/NAME.raw     every internal snapshot, read-only
//   layers/N.raw           the backing chain seen from depth N down, read-only
//   partitions/N.raw       the partitions of disk.raw, as writable as disk.raw
// Snapshot views open lazily; the partition table is read again after
// disk.raw was written, so a new table shows up without remounting.
import { allocatedBytes, type View } from './view.js'
import { ReadOnlyView } from './views/read-only.js'
import { WindowView } from './views/window.js'
import { ReadAheadView } from './views/read-ahead.js'
import { scanPartitions, type Partition } from './partitions/index.js'

export interface FileNode {
  kind: 'file'
  view: View
  /** last modification: the image file's, a snapshot's date, or the last write */
  mtime: Date
  /** preferred I/O size for st_blksize */
  blockSize: number
  /** allocated bytes, computed on demand and cached until the next write */
  allocated?: { generation: number, bytes: Promise<number>, at: number }
}

export interface DirNode { kind: 'dir', entries(): Promise<string[]> }

export type Node = FileNode | DirNode

export interface SnapshotSource {
  /** file name (without .raw) */
  name: string
  date: Date
  open(): Promise<View>
}

export interface TreeSources {
  disk: View
  diskTime: Date
  layers: Array<{ view: View, time: Date }>
  snapshots: SnapshotSource[]
  blockSize: number
}

const DIRS = ['snapshots', 'layers', 'partitions']
const RECOUNT_INTERVAL_MS = 1000

/** A snapshot name that can be a file name; others are shown by id. */
export function snapshotFileName (name: string, id: string): string {
  const ok = (s: string): boolean => s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0')
  return ok(name) ? name : `id-${id.replace(/[/\0]/g, '_')}`
}

export class MountTree {
  readonly disk: FileNode
  private readonly layers: FileNode[]
  private readonly snapshots = new Map<string, { source: SnapshotSource, node?: Promise<FileNode> }>()
  private partitionList?: Promise<Map<number, FileNode>>
  /** bumped by every change to disk.raw: invalidates partitions and allocation counts */
  private generation = 0

  constructor (private readonly src: TreeSources) {
    this.disk = { kind: 'file', view: new ReadAheadView(src.disk), mtime: src.diskTime, blockSize: src.blockSize }
    this.layers = src.layers.map(l => ({ kind: 'file', view: new ReadAheadView(new ReadOnlyView(l.view)), mtime: l.time, blockSize: src.blockSize }))
    for (const s of src.snapshots) if (!this.snapshots.has(s.name)) this.snapshots.set(s.name, { source: s })
  }

  /** disk.raw (directly or through a partition) was changed */
  changed (): void {
    this.generation++
    this.partitionList = undefined
    this.disk.mtime = new Date()
  }

  async lookup (path: string): Promise<Node | undefined> {
    if (path === '/') return { kind: 'dir', entries: async () => ['disk.raw', ...DIRS] }
    if (path === '/disk.raw') return this.disk
    const m = /^\/(snapshots|layers|partitions)(?:\/(.+))?$/.exec(path)
    if (!m) return undefined
    const [, dir, file] = m
    if (file === undefined) return { kind: 'dir', entries: () => this.list(dir) }
    if (!file.endsWith('.raw') || file.includes('/')) return undefined
    const stem = file.slice(0, -4)
    if (dir === 'snapshots') return this.snapshot(stem)
    if (!/^(0|[1-9][0-9]*)$/.test(stem)) return undefined
    const n = Number(stem)
    if (dir === 'layers') return this.layers[n]
    return (await this.partitions()).get(n)
  }

  private async list (dir: string): Promise<string[]> {
    if (dir === 'snapshots') return [...this.snapshots.keys()].map(n => `${n}.raw`)
    if (dir === 'layers') return this.layers.map((_, i) => `${i}.raw`)
    return [...(await this.partitions()).keys()].map(n => `${n}.raw`)
  }

  private snapshot (name: string): Promise<FileNode> | undefined {
    const entry = this.snapshots.get(name)
    if (!entry) return undefined
    if (!entry.node) {
      entry.node = entry.source.open().then(v => ({ kind: 'file', view: new ReadAheadView(new ReadOnlyView(v)), mtime: entry.source.date, blockSize: this.src.blockSize }) as FileNode)
      entry.node.catch(() => { entry.node = undefined }) // a failed open may be retried
    }
    return entry.node
  }

  /** partitions of disk.raw, each a window of it (so as writable as it is) */
  partitions (): Promise<Map<number, FileNode>> {
    if (!this.partitionList) {
      const disk = this.disk.view
      const list = scanPartitions(async (offset, length) => {
        const buf = Buffer.alloc(length)
        const inside = Math.max(0, Math.min(length, disk.size - offset))
        if (inside > 0) await disk.read(buf.subarray(0, inside), offset)
        return buf
      }, disk.size)
      const p = list.then(parts => new Map(parts.map((part: Partition) => [part.number, {
        kind: 'file', view: new WindowView(disk, part.start, part.length), mtime: this.disk.mtime, blockSize: this.src.blockSize,
      } as FileNode])))
      p.catch(() => { if (this.partitionList === p) this.partitionList = undefined })
      this.partitionList = p
    }
    return this.partitionList
  }

  /**
   * Bytes allocated in a file's view (st_blocks), recounted after writes,
   * but at most once a second while writes go on (the count walks the
   * image's metadata; the kernel caches attributes for a second anyway).
   */
  allocated (node: FileNode): Promise<number> {
    const gen = this.generation
    const now = Date.now()
    const cached = node.allocated
    if (!cached || (cached.generation !== gen && now - cached.at >= RECOUNT_INTERVAL_MS)) {
      const bytes = allocatedBytes(node.view)
      node.allocated = { generation: gen, bytes, at: now }
      bytes.catch(() => { if (node.allocated?.bytes === bytes) node.allocated = undefined })
      return bytes
    }
    return cached.bytes
  }
}
