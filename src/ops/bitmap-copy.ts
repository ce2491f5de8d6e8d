// convert --bitmaps: copy the persistent bitmaps of the (single, top-level)
// source to the target, as qemu-img 7.2 does. Two steps for the convert
// command:
//   checkBitmapSource(source, skipBroken)  before the target is created
//   copyBitmaps(source, target, opts)      after the data was copied
// The messages the convert command gives itself ("Copying bitmaps only
// possible with single source", "Format driver 'X' does not support
// bitmaps") use bitmapsSupported().
import { BlockError, QemuError } from '../cli/errors.js'
import type { Image } from '../block/types.js'

/** Can this image hold persistent bitmaps (qemu's "supports persistent dirty bitmaps")? */
export function bitmapsSupported (img: Image): boolean {
  return img.persistentBitmaps?.().storable() ?? false
}

/** The source checks qemu-img makes before creating the target. */
export function checkBitmapSource (source: Image, skipBroken: boolean): void {
  if (!bitmapsSupported(source)) throw new QemuError('Source lacks bitmap support')
  if (skipBroken) return
  const broken = source.persistentBitmaps!().list().find(b => b.inconsistent)
  if (broken) {
    throw new QemuError(`Cannot copy inconsistent bitmap '${broken.name}'\nTry --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it`)
  }
}

export interface CopyBitmapsOptions {
  skipBroken: boolean
  /** qemu's warnings (printed after the program name) */
  warn: (message: string) => void
}

/**
 * Create each source bitmap in the target with its granularity and state
 * and fill it with the source's bits. qemu walks the bitmaps newest first
 * (so that is the order failures are found in); the target stores them in
 * the source's order. A bitmap that cannot be filled is removed again.
 */
export async function copyBitmaps (source: Image, target: Image, opts: CopyBitmapsOptions): Promise<void> {
  const from = source.persistentBitmaps!()
  const to = target.persistentBitmaps?.()
  if (!to) throw new QemuError(`Format driver '${target.format}' does not support bitmaps`)
  for (const b of from.list().reverse()) {
    if (b.inconsistent) {
      opts.warn(`warning: Skipping inconsistent bitmap '${b.name}'`)
      continue
    }
    try {
      if (to.list().some(x => x.name === b.name)) throw new BlockError(`Bitmap already exists: ${b.name}`, 'EEXIST')
      to.checkStorable(b.name, b.granularity)
      await to.add(b.name, { granularity: b.granularity, enabled: b.enabled })
    } catch (e) {
      if (e instanceof BlockError) throw new QemuError(`Failed to create bitmap ${b.name}: ${e.message}`)
      throw e
    }
    try {
      if (source.size !== target.size) {
        throw new BlockError(`Bitmaps are of different sizes (destination size is ${target.size}, source size is ${source.size}) and can't be merged`, 'EINVAL')
      }
      await to.merge(b.name, await from.read(b.name))
    } catch (e) {
      await to.remove(b.name)
      if (e instanceof BlockError) throw new QemuError(`Failed to populate bitmap ${b.name}: ${e.message}`)
      throw e
    }
  }
}
