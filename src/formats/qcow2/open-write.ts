// Opening a qcow2 image for writing. An image whose dirty bit is set was not
// closed cleanly while it used lazy refcounts: its refcounts cannot be
// trusted, so (like qemu) it is repaired before anything is allocated.
import { BlockError } from '../../cli/errors.js'
import { INCOMPAT_DIRTY } from './header.js'
import { Qcow2Writer } from './write.js'
import type { Qcow2Image } from './driver.js'
import { repairQcow2 } from './check.js'

export async function openWriter (img: Qcow2Image): Promise<Qcow2Writer> {
  if (img.header.incompatible & INCOMPAT_DIRTY) {
    // lazy refcounts left the refcounts stale: rebuild them before writing, and
    // print what the repair found as qemu does (the lines `check -r all` prints)
    const result = await repairQcow2(img)
    for (const m of result.messages) {
      if (typeof m === 'string') img.shared.warn(m + '\n')
      else img.shared.warn(m.report, { prefixed: true })
    }
    if (img.header.incompatible & INCOMPAT_DIRTY) throw new BlockError('Could not repair dirty image', 'EIO')
  }
  return Qcow2Writer.open(img)
}
