// Crafting broken qcow2 images for tests: start from one qemu-img made and
// patch header fields, extensions and tables in place.
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './run.js'

export class Crafted {
  constructor (readonly file: string) {}

  static create (dir: string, name: string, opts: { size?: string, options?: string, io?: string[] } = {}): Crafted {
    qemuImgOk(['create', '-q', '-f', 'qcow2', ...(opts.options ? ['-o', opts.options] : []), name, opts.size ?? '1M'], { cwd: dir })
    if (opts.io?.length) qemuIoOk(opts.io, name, [], { cwd: dir })
    return new Crafted(path.join(dir, name))
  }

  private write (offset: number, data: Buffer): this {
    const fd = fs.openSync(this.file, 'r+')
    try { fs.writeSync(fd, data, 0, data.length, offset) } finally { fs.closeSync(fd) }
    return this
  }

  read (offset: number, length: number): Buffer {
    const fd = fs.openSync(this.file, 'r')
    try {
      const b = Buffer.alloc(length)
      fs.readSync(fd, b, 0, length, offset)
      return b
    } finally { fs.closeSync(fd) }
  }

  u8 (offset: number, v: number): this { return this.write(offset, Buffer.from([v])) }
  u16 (offset: number, v: number): this { const b = Buffer.alloc(2); b.writeUInt16BE(v); return this.write(offset, b) }
  u32 (offset: number, v: number): this { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return this.write(offset, b) }
  u64 (offset: number, v: bigint | number): this { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return this.write(offset, b) }
  bytes (offset: number, data: Buffer): this { return this.write(offset, data) }
  getU32 (offset: number): number { return this.read(offset, 4).readUInt32BE(0) }
  getU64 (offset: number): bigint { return this.read(offset, 8).readBigUInt64BE(0) }
  /** OR bits into a 64-bit header field */
  orU64 (offset: number, bits: bigint): this { return this.u64(offset, this.getU64(offset) | bits) }
  truncate (size: number): this { fs.truncateSync(this.file, size); return this }
  size (): number { return fs.statSync(this.file).size }

  /** the header extensions: [position of the extension header, type, length] */
  extensions (): Array<{ pos: number, type: number, length: number }> {
    const head = this.read(0, 65536)
    const out: Array<{ pos: number, type: number, length: number }> = []
    let pos = head.readUInt32BE(100)
    while (pos + 8 <= head.length) {
      const type = head.readUInt32BE(pos)
      const length = head.readUInt32BE(pos + 4)
      out.push({ pos, type, length })
      if (type === 0) break
      pos += 8 + ((length + 7) & ~7)
    }
    return out
  }

  /** Append `data` at the next multiple of `align` past the end of the file; returns its offset. */
  append (data: Buffer, align = 65536): number {
    const offset = Math.ceil(this.size() / align) * align
    this.write(offset, data)
    return offset
  }
}

export const H = {
  version: 4, backingOffset: 8, backingSize: 16, clusterBits: 20, size: 24, cryptMethod: 32, l1Size: 36,
  l1Offset: 40, refcountTableOffset: 48, refcountTableClusters: 56, nbSnapshots: 60, snapshotsOffset: 64,
  incompatible: 72, compatible: 80, autoclear: 88, refcountOrder: 96, headerLength: 100, compressionType: 104,
}

/** One snapshot table entry (docs/interop/qcow2.txt), padded to 8 bytes. */
export function snapshotEntry (o: { l1Offset?: number, l1Size?: number, id?: string, name?: string, extra?: Buffer, extraSize?: number, vmState?: number, dateSec?: number, clockNs?: bigint } = {}): Buffer {
  const id = Buffer.from(o.id ?? '1')
  const name = Buffer.from(o.name ?? 'snap')
  const extra = o.extra ?? Buffer.alloc(24)
  const e = Buffer.alloc(40)
  e.writeBigUInt64BE(BigInt(o.l1Offset ?? 0x30000), 0)
  e.writeUInt32BE(o.l1Size ?? 1, 8)
  e.writeUInt16BE(id.length, 12)
  e.writeUInt16BE(name.length, 14)
  e.writeUInt32BE(o.dateSec ?? 0, 16)
  e.writeBigUInt64BE(o.clockNs ?? 0n, 24)
  e.writeUInt32BE(o.vmState ?? 0, 32)
  e.writeUInt32BE(o.extraSize ?? extra.length, 36)
  const all = Buffer.concat([e, extra, id, name])
  return Buffer.concat([all, Buffer.alloc((8 - all.length % 8) % 8)])
}
