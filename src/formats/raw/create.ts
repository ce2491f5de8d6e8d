// raw creation: a file of the guest size (rounded up to a sector), sparse or
// preallocated.
import { BlockError, errnoOf, strerror } from '../../cli/errors.js'
import { allocateFirstBlock, checkFileOptions, createHostFile, preallocateFile } from '../../block/file-create.js'
import { isOn } from '../../cli/create-options.js'
import type { CreateContext, Preallocation } from '../../block/types.js'

export async function createRaw (filename: string, options: Record<string, string>, _ctx: CreateContext): Promise<void> {
  const mode = options.preallocation ?? 'off'
  if (!['off', 'metadata', 'falloc', 'full'].includes(mode)) throw new BlockError(`invalid parameter value: ${mode}`, 'EINVAL')
  checkFileOptions(options)
  const exact = (BigInt(options.size ?? '0') + 511n) / 512n * 512n
  const size = Number(exact)
  const store = await createHostFile(filename, { nocow: isOn(options.nocow) })
  try {
    // the file exists (empty) before the mode is looked at, as with qemu
    if (mode === 'metadata') throw new BlockError('Unsupported preallocation mode: metadata', 'ENOTSUP')
    // a size beyond 2^63-1 (or negative, from -o size=8E) cannot be set; the empty file stays, as with qemu
    if (exact < 0n || exact > (1n << 63n) - 1n) throw new BlockError('Could not resize file: Invalid argument', 'EINVAL')
    try {
      await preallocateFile(store, 0, size, mode as Preallocation)
    } catch (e) {
      const code = errnoOf(e)
      if (code === 'EFBIG' || e instanceof RangeError) throw new BlockError('The image size is too large for file format \'raw\'', 'EFBIG')
      throw new BlockError(`Could not resize file: ${strerror(code)}`, code ?? 'EIO')
    }
    await allocateFirstBlock(store, size)
  } finally {
    await store.close()
  }
}
