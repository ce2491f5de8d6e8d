// Changing what the header cluster holds as qemu does it: the cluster is
// rebuilt (header-write.ts) and written whole, one write being the commit
// point; the in-memory header changes only once the write is done.
import { BlockError } from '../../cli/errors.js'
import { encodeHeaderCluster } from './header-write.js'
import { MAX_BACKING_NAME } from './open.js'
import type { Qcow2Header } from './header.js'
import type { Qcow2Image } from './driver.js'

/** Rewrite the header cluster with `change` applied to (a copy of) the header. */
export async function rewriteHeader (img: Qcow2Image, change: (h: Qcow2Header) => void): Promise<void> {
  const next: Qcow2Header = { ...img.header, extensions: [...img.header.extensions] }
  change(next)
  // qemu writes the whole cluster (a sparse header cluster becomes allocated)
  const buf = encodeHeaderCluster(next, img.geo.clusterSize)
  await img.store.write(buf, 0)
  await img.store.flush()
  Object.assign(img.header, next)
}

/** Change the backing file name and format recorded in the header ('' or undefined name: none). */
export async function rewriteBacking (img: Qcow2Image, name: string | undefined, format: string | undefined): Promise<void> {
  if (name && Buffer.byteLength(name) > MAX_BACKING_NAME) throw new BlockError('Invalid argument', 'EINVAL')
  try {
    await rewriteHeader(img, h => {
      h.backingFile = name || undefined
      h.backingFormat = name ? format : undefined
    })
  } catch (e) {
    if (e instanceof BlockError && e.errno === 'ENOSPC') throw new BlockError('No space left in the file header', 'ENOSPC')
    throw e
  }
  img.backingName = img.header.backingFile
  img.backingFormat = img.header.backingFormat
}
