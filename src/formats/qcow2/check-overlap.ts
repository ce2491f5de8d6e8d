// Metadata overlap protection for the writes a repair makes: before a table
// is written, the clusters it touches are compared with every structure the
// header points to, as qemu's "cached" overlap check does. A repair that
// would overwrite other metadata marks the image corrupt and stops instead.
import type { CheckContext } from './check-context.js'
import type { StoredRefcounts } from './check-stored.js'
import type { WalkLayout } from './check-walk.js'

export type MetadataKind =
  | 'qcow2_header' | 'active L1 table' | 'active L2 table' | 'refcount table'
  | 'refcount block' | 'snapshot table' | 'inactive L1 table' | 'bitmap directory'

export class OverlapGuard {
  private l1?: Buffer

  constructor (private readonly ctx: CheckContext, private readonly stored: StoredRefcounts, private readonly layout: WalkLayout) {}

  /** The first structure (in qemu's order) that the clusters of [offset, offset+size) overlap. */
  async find (offset: number, size: number, ignore: MetadataKind[] = []): Promise<MetadataKind | undefined> {
    const cs = this.ctx.cs
    const h = this.ctx.header
    const start = Math.floor(offset / cs) * cs
    const end = Math.ceil((offset + size) / cs) * cs
    const hits = (at: number, len: number): boolean => len > 0 && at < end && at + len > start
    const check = (kind: MetadataKind, test: () => boolean): boolean => !ignore.includes(kind) && test()

    if (check('qcow2_header', () => hits(0, cs))) return 'qcow2_header'
    if (check('active L1 table', () => hits(h.l1TableOffset, h.l1Size * 8))) return 'active L1 table'
    if (!ignore.includes('active L2 table')) {
      const l1 = await this.activeL1()
      for (let i = 0; i < h.l1Size; i++) {
        const hi = l1.readUInt32BE(i * 8) & 0x00ffffff
        const at = hi * 0x100000000 + ((l1.readUInt32BE(i * 8 + 4) & 0xfffffe00) >>> 0)
        if (at !== 0 && hits(at, cs)) return 'active L2 table'
      }
    }
    if (check('refcount table', () => hits(h.refcountTableOffset, h.refcountTableClusters * cs))) return 'refcount table'
    if (!ignore.includes('refcount block')) {
      for (let i = 0; i < this.stored.tableEntries; i++) {
        const at = this.stored.blockOffset(i)
        if (at !== 0 && Number.isFinite(at) && hits(at, cs)) return 'refcount block'
      }
    }
    if (check('snapshot table', () => hits(this.layout.snapshotsOffset, this.layout.snapshotsSize))) return 'snapshot table'
    if (!ignore.includes('inactive L1 table')) {
      for (const sn of this.layout.snapshots) {
        if (hits(sn.l1TableOffset, sn.l1Size * 8)) return 'inactive L1 table'
      }
    }
    const b = this.layout.bitmaps
    if (b && check('bitmap directory', () => hits(b.directoryOffset, b.directorySize))) return 'bitmap directory'
    return undefined
  }

  private async activeL1 (): Promise<Buffer> {
    if (!this.l1) {
      this.l1 = Buffer.alloc(this.ctx.header.l1Size * 8)
      await this.ctx.read(this.l1, this.ctx.header.l1TableOffset)
    }
    return this.l1
  }

  /** Forget the cached active L1 (its L2 offsets changed). */
  reset (): void { this.l1 = undefined }

  /**
   * Write metadata unless it would overwrite other metadata: then the image
   * is marked corrupt (qemu's "Preventing invalid write on metadata") and
   * the returned error (EIO) ends the repair.
   */
  async write (buf: Buffer, offset: number, ignore: MetadataKind[]): Promise<void> {
    const hit = await this.find(offset, buf.length, ignore)
    if (hit) throw await this.ctx.corruptionEvent(`Preventing invalid write on metadata (overlaps with ${hit})`)
    await this.ctx.write(buf, offset)
  }
}
