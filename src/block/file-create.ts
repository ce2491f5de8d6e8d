// The "file" protocol's side of image creation: its -o options (merged into
// every format's list, as qemu-img does when a target file name is given)
// and creating the host file with nocow and preallocation.
import { BlockError, errnoOf, strerror } from '../cli/errors.js'
import { FileStore } from '../io/file-store.js'
import { native } from '../io/native.js'
import type { CreateOptionSpec, Preallocation } from './types.js'

/** In the order qemu-img prints them on its "Formatting" line. */
export const FILE_CREATE_OPTIONS: CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'nocow', type: 'bool', help: 'Turn off copy-on-write (valid only on btrfs)' },
  { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable' },
]

export interface FileCreateOptions {
  nocow?: boolean
  /** XFS extent size hint; checked, but only XFS honours it and qimg does not set it */
  extentSizeHint?: number
}

/** Check the protocol options qemu checks before creating anything. */
export function checkFileOptions (opts: Record<string, string>): void {
  if (opts.extent_size_hint !== undefined && BigInt(opts.extent_size_hint) > 0xffffffffn) {
    throw new BlockError('Extent size hint is too large', 'EINVAL')
  }
}

/** Create (or truncate) a host file, with qemu's message when that fails. */
export async function createHostFile (filename: string, opts: FileCreateOptions = {}): Promise<FileStore> {
  let store: FileStore
  try {
    store = await FileStore.open(filename, { writable: true, create: true, truncate: true })
  } catch (e) {
    throw new BlockError(`Could not create '${filename}': ${strerror(errnoOf(e))}`, errnoOf(e) ?? 'EIO')
  }
  // btrfs only: elsewhere the flag does not exist and qemu ignores the failure too
  if (opts.nocow) native()?.setNoCow(store.fd)
  return store
}

/**
 * qemu writes the first 4 KiB of a file it has just sized (so that later
 * alignment probing finds a real block there): the range reads as data.
 */
export async function allocateFirstBlock (store: FileStore, length: number): Promise<void> {
  const n = Math.min(4096, length)
  if (n > 0) await store.write(Buffer.alloc(n), 0)
}

/** Grow a new file to `length` as a preallocation mode asks (off: sparse). */
export async function preallocateFile (store: FileStore, from: number, length: number, mode: Preallocation): Promise<void> {
  if (length <= from) return
  if (mode === 'falloc') {
    await store.allocate(from, length - from)
  } else if (mode === 'full') {
    const chunk = Buffer.alloc(Math.min(length - from, 1 << 20))
    for (let pos = from; pos < length; pos += chunk.length) {
      await store.write(chunk.subarray(0, Math.min(chunk.length, length - pos)), pos)
    }
  }
  if (await store.size() < length) await store.truncate(length)
}
