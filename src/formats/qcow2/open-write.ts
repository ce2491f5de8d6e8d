// Opening a qcow2 image for writing. An image whose dirty bit is set was not
// closed cleanly while it used lazy refcounts: its refcounts cannot be
// trusted, so (like qemu) it is repaired before anything is allocated.
import { BlockError } from '../../cli/errors.js'
import { INCOMPAT_DIRTY } from './header.js'
import { Qcow2Writer } from './write.js'
import type { Qcow2Image } from './driver.js'

export async function openWriter (img: Qcow2Image): Promise<Qcow2Writer> {
  if (img.header.incompatible & INCOMPAT_DIRTY) {
    // REPAIR HOOK: the check developer's qcow2 check (src/formats/qcow2/check.ts)
    // provides Image.check('all'), which rebuilds refcounts and clears the bit.
    const check = (img as { check?: (mode: 'all') => Promise<unknown> }).check
    if (typeof check !== 'function') {
      throw new BlockError('Image has the dirty bit set (lazy refcounts) and needs a repair: run \'qemu-img check -r all\'', 'ENOTSUP')
    }
    await check.call(img, 'all')
    if (img.header.incompatible & INCOMPAT_DIRTY) throw new BlockError('Could not repair dirty image', 'EIO')
  }
  return Qcow2Writer.open(img)
}
