// Creating the host file of a new image (QEMU's "file" protocol create):
// its -o options, the write lock qemu takes while creating, nocow,
// preallocation, and the one small write qemu makes so the file's first
// block is allocated (`map`/`du` of a new image show it).
import { statSync } from 'node:fs'
import { BlockError, errnoOf, strerror } from '../cli/errors.js'
import { FileStore } from '../io/file-store.js'
import { native } from '../io/native.js'
import { PERM_ALL, PERM_RESIZE, PERM_WRITE } from '../io/lock.js'
import type { CreateOptionSpec, Preallocation } from './types.js'

/** In the order qemu-img prints them on its "Formatting" line (`-o help` sorts them). */
export const FILE_CREATE_OPTIONS: readonly CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
  { name: 'nocow', type: 'bool', help: 'Turn off copy-on-write (valid only on btrfs)' },
  { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable' },
]

export interface FileCreateOptions {
  /** guest size in bytes (rounded up to a sector); a decimal string keeps sizes past 2^53 exact */
  size: number | string
  preallocation?: string
  nocow?: boolean
}

const SECTOR = 512n
const INT64_MAX = (1n << 63n) - 1n

/** The preallocation modes the file protocol knows; anything else is refused before the file is touched. */
export function parseFilePreallocation (value: string | undefined): Preallocation {
  const mode = value ?? 'off'
  if (mode !== 'off' && mode !== 'metadata' && mode !== 'falloc' && mode !== 'full') {
    throw new BlockError(`invalid parameter value: ${mode}`, 'EINVAL')
  }
  return mode
}

/** Check the protocol options qemu checks before creating anything. */
export function checkFileOptions (opts: Record<string, string>): void {
  if (opts.extent_size_hint !== undefined && BigInt(opts.extent_size_hint) > 0xffffffffn) {
    throw new BlockError('Extent size hint is too large', 'EINVAL')
  }
}

/**
 * Open (creating it if needed) and empty a host file, holding the write lock
 * as qemu does (a file another process uses is refused, not truncated).
 */
export async function createHostFile (filename: string, opts: { nocow?: boolean } = {}): Promise<FileStore> {
  let store: FileStore
  try {
    store = await FileStore.open(filename, { writable: true, create: true })
  } catch (e) {
    throw new BlockError(`Could not create '${filename}': ${strerror(errnoOf(e))}`, errnoOf(e) ?? 'EIO')
  }
  try {
    // the locks qemu's file protocol takes to create: write and resize, not sharing resize
    store.lock({ held: PERM_WRITE | PERM_RESIZE, shared: PERM_ALL & ~PERM_RESIZE })
    // btrfs only: elsewhere the flag does not exist and qemu ignores the failure too
    if (opts.nocow) native()?.setNoCow(store.fd)
    await store.truncate(0)
  } catch (e) {
    await store.close()
    throw e
  }
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

/** Grow a file from `from` to `length` bytes as a preallocation mode asks (off: sparse). */
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

/**
 * Create `filename` as a plain file of `size` bytes (rounded up to a
 * sector) with the preallocation asked for: raw images, external data files.
 * qemu leaves the emptied file behind when sizing it fails.
 */
export async function createFile (filename: string, opts: FileCreateOptions): Promise<void> {
  const mode = parseFilePreallocation(opts.preallocation)
  const exact = (BigInt(opts.size) + SECTOR - 1n) / SECTOR * SECTOR
  const size = Number(exact)
  const store = await createHostFile(filename, { nocow: opts.nocow })
  try {
    if (mode === 'metadata') throw new BlockError('Unsupported preallocation mode: metadata', 'ENOTSUP')
    // beyond 2^63-1 (or negative, from -o size=8E) the size cannot be set
    if (exact < 0n || exact > INT64_MAX) throw new BlockError('Could not resize file: Invalid argument', 'EINVAL')
    try {
      await preallocateFile(store, 0, size, mode)
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

/** Whether two paths name the same file (same device and inode). */
export function sameFile (a: string, b: string): boolean {
  try {
    const sa = statSync(a)
    const sb = statSync(b)
    return sa.dev === sb.dev && sa.ino === sb.ino
  } catch {
    return false
  }
}
