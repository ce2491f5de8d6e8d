// `info`: the QAPI ImageInfo of an image (and of each image in its chain).
// Keys are inserted in the schema's order; the JSON printer applies QEMU's
// dict ordering.
import { resolve } from 'node:path'
import type { JsonValue } from '../cli/qjson.js'
import type { Image, SnapshotInfo } from '../block/types.js'
import { resolveRelative } from '../block/paths.js'

export type ImageInfo = { [k: string]: JsonValue | undefined }

export function snapshotToQapi (s: SnapshotInfo): ImageInfo {
  const o: ImageInfo = {
    id: s.id,
    name: s.name,
    'vm-state-size': s.vmStateSize,
    'date-sec': s.dateSec,
    'date-nsec': s.dateNsec,
    'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9),
    'vm-clock-nsec': s.vmClockNsec % 1e9,
  }
  if (s.icount !== undefined) o.icount = s.icount
  return o
}

/** ImageInfo for one opened image (its backing chain is not described). */
export async function imageInfo (img: Image): Promise<ImageInfo> {
  const d = await img.details()
  const info: ImageInfo = {
    filename: img.filename,
    format: img.format,
    'dirty-flag': d.dirty ?? false,
  }
  const actual = await actualSize(img)
  if (actual !== undefined) info['actual-size'] = actual
  info['virtual-size'] = img.size
  if (d.clusterSize !== undefined) info['cluster-size'] = d.clusterSize
  if (d.encrypted) info.encrypted = true
  if (img.backingName !== undefined && img.backingName !== '') {
    info['backing-filename'] = img.backingName
    info['full-backing-filename'] = resolveRelative(img.filename, img.backingName)
    if (img.backingFormat !== undefined) info['backing-filename-format'] = img.backingFormat
  }
  if (d.snapshots && d.snapshots.length > 0) info.snapshots = d.snapshots.map(snapshotToQapi)
  if (d.formatSpecific) info['format-specific'] = d.formatSpecific as unknown as JsonValue
  return info
}

async function actualSize (img: Image): Promise<number | undefined> {
  try {
    return await img.store.allocatedSize()
  } catch {
    return undefined
  }
}

/** The absolute form of a name, for loop detection in --backing-chain. */
export function chainKey (name: string): string {
  return resolve(name)
}
