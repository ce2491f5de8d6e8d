// What a qcow2 image's persistent bitmaps are, for comparing the results of
// qimg and qemu-img: names, granularity and flags as `qemu-img info` lists
// them, and the contents of every consistent bitmap (runs of set bits, read
// through qimg's decoder, which a separate unit test checks against data
// qemu wrote), plus `qemu-img check`.
import fs from 'node:fs'
import { openImage } from '../../src/block/open.js'
import { qemuImg } from './run.js'
import { qemuCheck } from './write-model.js'

export interface BitmapState {
  info: unknown
  contents: Record<string, Array<[number, number]>>
}

export async function bitmapState (file: string): Promise<BitmapState> {
  const info = JSON.parse(qemuImg(['info', '-U', '--output=json', file]).stdout || '{}')?.['format-specific']?.data?.bitmaps ?? null
  const contents: Record<string, Array<[number, number]>> = {}
  const img = await openImage(file, { format: 'qcow2', noBacking: true, forceShare: true })
  try {
    const bitmaps = img.persistentBitmaps?.()
    for (const b of bitmaps?.list() ?? []) {
      if (!b.inconsistent) contents[b.name] = [...(await bitmaps!.read(b.name)).runs()]
    }
  } finally {
    await img.close()
  }
  return { info, contents }
}

/** qemu-img check's verdict, leaks included. */
export function checkCounts (file: string): { counts: number[], raw: string } {
  const c = qemuCheck(file)
  return { counts: [c.corruptions, c.leaks, c.checkErrors], raw: c.raw }
}

/** Set the flags of a bitmap directory entry in place (crafting in-use bitmaps). */
export function setBitmapFlags (file: string, name: string, flags: number): void {
  const d = fs.readFileSync(file)
  let pos = d.readUInt32BE(100)
  for (;;) {
    const type = d.readUInt32BE(pos)
    const len = d.readUInt32BE(pos + 4)
    if (type === 0) throw new Error('no bitmaps extension')
    if (type === 0x23852875) break
    pos += 8 + ((len + 7) & ~7)
  }
  const nb = d.readUInt32BE(pos + 8)
  let p = Number(d.readBigUInt64BE(pos + 24))
  for (let i = 0; i < nb; i++) {
    const nameLen = d.readUInt16BE(p + 18)
    const extra = d.readUInt32BE(p + 20)
    if (d.subarray(p + 24 + extra, p + 24 + extra + nameLen).toString() === name) {
      const fd = fs.openSync(file, 'r+')
      const b = Buffer.alloc(4)
      b.writeUInt32BE(flags)
      fs.writeSync(fd, b, 0, 4, p + 12)
      fs.closeSync(fd)
      return
    }
    p += (24 + extra + nameLen + 7) & ~7
  }
  throw new Error(`no bitmap ${name}`)
}
