// `bitmap`: add, remove, clear, enable, disable and merge persistent dirty
// bitmaps, one action after another in command-line order, with the checks
// and messages of qemu's block-dirty-bitmap-* operations as qemu-img 7.2
// reports them ("Operation add on bitmap NAME failed: ...").
import { BlockError, QemuError } from '../cli/errors.js'
import type { DirtyBitmap } from '../block/dirty-bitmap.js'
import type { BitmapInfo, Image, PersistentBitmaps } from '../block/types.js'

export type BitmapAction =
  | { op: 'add' | 'remove' | 'clear' | 'enable' | 'disable' }
  | { op: 'merge', source: string }

export interface BitmapRequest {
  /** the bitmap the actions apply to */
  bitmap: string
  actions: BitmapAction[]
  /** -g as parsed (0 or absent: the image's default) */
  granularity?: bigint
  /** where --merge finds its sources (-b); default: the image itself */
  mergeSource?: Image
}

/**
 * qemu names the image's block node "#block" + a counter + two random
 * digits in some messages; qemu-img's first node is always counter 1.
 */
function nodeName (): string {
  return `#block1${String(Math.floor(Math.random() * 100)).padStart(2, '0')}`
}

const INCONSISTENT_HINT = 'Try block-dirty-bitmap-remove to delete this bitmap from disk'

function lookup (bitmaps: PersistentBitmaps | undefined, name: string): BitmapInfo {
  const b = bitmaps?.list().find(x => x.name === name)
  if (!b) throw new BlockError(`Dirty bitmap '${name}' not found`, 'ENOENT')
  return b
}

function checkConsistent (b: BitmapInfo): void {
  if (b.inconsistent) throw new BlockError(`Bitmap '${b.name}' is inconsistent and cannot be used\n${INCONSISTENT_HINT}`, 'EINVAL')
}

export async function applyBitmapActions (img: Image, req: BitmapRequest): Promise<void> {
  const bitmaps = img.persistentBitmaps?.()
  const node = nodeName()
  for (const action of req.actions) {
    try {
      await apply(img, bitmaps, node, req, action)
    } catch (e) {
      if (e instanceof BlockError) throw new QemuError(`Operation ${action.op} on bitmap ${req.bitmap} failed: ${e.message}`)
      throw e
    }
  }
}

async function apply (img: Image, bitmaps: PersistentBitmaps | undefined, node: string, req: BitmapRequest, action: BitmapAction): Promise<void> {
  const name = req.bitmap
  switch (action.op) {
    case 'add': {
      if (name === '') throw new BlockError('Bitmap name cannot be empty', 'EINVAL')
      if (bitmaps?.list().some(b => b.name === name)) throw new BlockError(`Bitmap already exists: ${name}`, 'EEXIST')
      // QMP's granularity is a uint32: larger values wrap, 0 means "not given"
      const given = req.granularity !== undefined && req.granularity !== 0n
      const value = given ? Number(req.granularity! & 0xffffffffn) : 0
      if (given && (value < 512 || (value & (value - 1)) !== 0)) throw new BlockError('Granularity must be power of 2 and at least 512', 'EINVAL')
      if (!bitmaps) throw new BlockError(`Can't store persistent bitmaps to ${node}: Operation not supported`, 'ENOTSUP')
      const granularity = given ? value : bitmaps.defaultGranularity()
      try {
        bitmaps.checkStorable(name, granularity)
      } catch (e) {
        if (e instanceof BlockError) throw new BlockError(`Can't make bitmap '${name}' persistent in '${node}': ${e.message}`, e.errno)
        throw e
      }
      await bitmaps.add(name, { granularity, enabled: true })
      return
    }
    case 'remove':
      lookup(bitmaps, name)
      await bitmaps!.remove(name)
      return
    case 'clear':
    case 'enable':
    case 'disable': {
      checkConsistent(lookup(bitmaps, name))
      if (action.op === 'clear') await bitmaps!.clear(name)
      else await bitmaps!.setEnabled(name, action.op === 'enable')
      return
    }
    case 'merge': {
      const dest = lookup(bitmaps, name)
      const srcImage = req.mergeSource ?? img
      const srcBitmaps = srcImage.persistentBitmaps?.()
      const src = lookup(srcBitmaps, action.source)
      checkConsistent(dest)
      checkConsistent(src)
      if (srcImage.size !== img.size) {
        throw new BlockError(`Bitmaps are of different sizes (destination size is ${img.size}, source size is ${srcImage.size}) and can't be merged`, 'EINVAL')
      }
      const contents: DirtyBitmap = await srcBitmaps!.read(action.source)
      await bitmaps!.merge(name, contents)
    }
  }
}
