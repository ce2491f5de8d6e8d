// QEMU's image locking, so qimg and qemu processes respect each other: OFD
// byte locks on the image file, byte 100+P held while a process has
// permission P, byte 200+P while it refuses to share P with others
// (P: 0 consistent read, 1 write, 2 write unchanged, 3 resize).
// An opener first checks for conflicts, then takes read locks on its bytes.
import { BlockError } from '../cli/errors.js'
import { FileStore } from '../io/file-store.js'
import { native } from '../io/native.js'
import type { Image } from './types.js'

const PERM_BYTE = 100
const SHARED_BYTE = 200
const NAMES = ['consistent read', 'write', 'write unchanged', 'resize']
const READ = 0
const WRITE = 1
const RESIZE = 3
const F_RDLCK = 0
const F_WRLCK = 1

/**
 * Take the locks a reader (or writer) that does not share write/resize
 * takes, as qemu-nbd does; throws qemu's "Failed to get ... lock" when
 * another process's locks conflict. No-op for non-file stores or without
 * the native addon.
 */
export function lockImageFile (store: unknown, writable: boolean): void {
  const n = native()
  if (!n || !(store instanceof FileStore)) return
  const fd = store.fd
  const held = writable ? [READ, WRITE, RESIZE] : [READ]
  const unshared = [WRITE, RESIZE]
  const taken = (byte: number): boolean => n.ofdLock(fd, F_WRLCK, byte, 1, 1) === 1
  for (const p of held) {
    if (taken(SHARED_BYTE + p)) throw new BlockError(`Failed to get "${NAMES[p]}" lock (is another process using the image?)`, 'EAGAIN')
  }
  for (const p of unshared) {
    if (taken(PERM_BYTE + p)) throw new BlockError(`Failed to get shared "${NAMES[p]}" lock (is another process using the image?)`, 'EAGAIN')
  }
  for (const byte of [...held.map(p => PERM_BYTE + p), ...unshared.map(p => SHARED_BYTE + p)]) {
    const r = n.ofdLock(fd, F_RDLCK, byte, 1, 0)
    if (r < 0) throw new BlockError(`Failed to lock byte ${byte}`, 'EAGAIN')
  }
}

/** Lock every file of an opened chain: the top as asked, backing files for reading. */
export function lockChain (image: Image, writable: boolean): void {
  let img: Image | null = image
  let first = true
  while (img) {
    try {
      lockImageFile(img.store, first && writable)
    } catch (e) {
      if (e instanceof BlockError) throw new BlockError(`Could not open '${img.filename}': ${e.message}`, e.errno)
      throw e
    }
    img = img.backing
    first = false
  }
}
