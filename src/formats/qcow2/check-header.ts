// Header updates a read-write check makes before checking.
import type { CheckContext } from './check-context.js'
import { AUTOCLEAR_BITMAPS, EXT_BITMAPS, EXT_END, V2_HEADER_LENGTH } from './header.js'

/**
 * A program without bitmap support cleared the bitmaps autoclear bit, so the
 * bitmaps are stale and their clusters are leaks. Opened read-write, qemu
 * removes the bitmaps extension from the header (the check then frees the
 * clusters). The extension is cut out of the extension area in place; what
 * follows it (the backing file name) stays where it is.
 */
export async function dropStaleBitmaps (ctx: CheckContext): Promise<void> {
  const h = ctx.header
  if (!h.bitmapsExt || (h.autoclear & AUTOCLEAR_BITMAPS)) return
  const start = h.version >= 3 ? h.headerLength : V2_HEADER_LENGTH
  const end = h.backingFileOffset > 0 ? h.backingFileOffset : ctx.cs
  const area = Buffer.alloc(end - start)
  await ctx.read(area, start)
  const kept: Buffer[] = []
  let pos = 0
  let found = false
  while (pos + 8 <= area.length) {
    const type = area.readUInt32BE(pos)
    const len = area.readUInt32BE(pos + 4)
    if (type === EXT_END) break
    const rec = 8 + Math.ceil(len / 8) * 8
    if (pos + rec > area.length) return // malformed: leave the header alone
    if (type === EXT_BITMAPS) found = true
    else kept.push(area.subarray(pos, pos + rec))
    pos += rec
  }
  if (!found) return
  const used = pos + 8
  const out = Buffer.alloc(used)
  Buffer.concat(kept).copy(out) // the end marker and the freed tail stay zero
  await ctx.write(out, start)
  await ctx.store.flush()
  h.bitmapsExt = undefined
  h.extensions = h.extensions.filter(e => e.type !== EXT_BITMAPS)
}
