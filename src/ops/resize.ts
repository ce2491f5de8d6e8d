// `resize`: change an opened image's virtual size, with qemu-img's checks
// (positive size, --shrink required to shrink, preallocation only to grow).
import { BlockError, QemuError } from '../cli/errors.js'
import type { Image, Preallocation } from '../block/types.js'

export interface ResizeRequest {
  /** the size argument's value in bytes */
  amount: number
  /** '+'/'-': relative to the current size */
  relative?: '+' | '-'
  preallocation: Preallocation
  shrink: boolean
}

/** Refusal to shrink without --shrink: qemu-img adds a warning line after the error. */
export class ShrinkRefused extends QemuError {
  readonly warning = 'Shrinking an image will delete all data beyond the shrunken image\'s end. Before performing such an operation, make sure there is no important data there.'
  constructor () { super('Use the --shrink option to perform a shrink operation.') }
}

export async function resizeImage (img: Image, req: ResizeRequest): Promise<void> {
  const current = img.size
  const total = req.relative === '+' ? current + req.amount : req.relative === '-' ? current - req.amount : req.amount
  // sizes from 2^63 up are negative as qemu's int64
  if (total <= 0 || total >= 2 ** 63) throw new QemuError('New image size must be positive')
  if (req.preallocation !== 'off' && total <= current) throw new QemuError('Preallocation can only be used for growing images')
  if (total < current && !req.shrink) throw new ShrinkRefused()
  if (!img.resize) throw new QemuError('Image format driver does not support resize')
  try {
    await img.resize(total, { preallocation: req.preallocation, shrink: req.shrink })
    await img.flush()
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(e.message)
    throw e
  }
}
