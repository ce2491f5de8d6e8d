// --overlay FILE: a qcow2 file backed by the image, taking every write, so
// the image itself is never touched. Created on first use (backing file
// recorded by absolute path, so the overlay works from any directory),
// reused later. Copy-on-write at cluster granularity and crash safety are the
// qcow2 driver's; here the overlay is opened alone and given the already
// opened image as its backing, so secrets and --image-opts of the image apply.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { BlockError } from '../src/cli/errors.js'
import { openImage } from '../src/block/open.js'
import { findFormat } from '../src/block/registry.js'
import { resolveRelative } from '../src/block/paths.js'
import { SecretStore } from '../src/block/secrets.js'
import type { ClusterCache } from '../src/block/cache.js'
import type { Image } from '../src/block/types.js'
import { realOrResolved } from './runtime.js'

export interface OverlayCaches { clusterCache: ClusterCache, metadataCache: ClusterCache }

async function createOverlay (file: string, base: Image, warn: (m: string) => void): Promise<void> {
  const driver = await findFormat('qcow2')!.load()
  await driver.create!(file, {
    size: String(base.size),
    backing_file: realOrResolved(base.filename),
    backing_fmt: base.format,
  }, { secrets: new SecretStore(), warn })
}

/** Open (creating if missing) the overlay `file` on top of `base`. */
export async function openOverlay (file: string, base: Image, caches: OverlayCaches, warn: (m: string) => void): Promise<Image> {
  const abs = resolve(file)
  if (realOrResolved(abs) === realOrResolved(base.filename)) throw new BlockError(`Overlay '${file}' is the image itself`, 'EINVAL')
  if (!existsSync(abs)) await createOverlay(abs, base, warn)
  let overlay: Image
  try {
    overlay = await openImage(abs, { format: 'qcow2', readOnly: false, noBacking: true, ...caches, onWarning: warn })
  } catch (e) {
    if (e instanceof BlockError) throw new BlockError(`Could not open overlay '${file}': ${e.message}`, e.errno)
    throw e
  }
  const backing = overlay.backingName ? realOrResolved(resolveRelative(abs, overlay.backingName)) : undefined
  if (backing !== realOrResolved(base.filename)) {
    await overlay.close()
    const what = overlay.backingName ? `backed by '${overlay.backingName}'` : 'not backed by any file'
    throw new BlockError(`Overlay '${file}' is ${what}, not by '${base.filename}'`, 'EINVAL')
  }
  overlay.backing = base
  return overlay
}
