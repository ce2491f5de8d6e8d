// -l snapshot_param ('snapshot.id=[ID],snapshot.name=[NAME]' or '[ID_OR_NAME]'),
// as measure and convert take it: a read-only view of the image at that snapshot.
import { QemuError } from './errors.js'
import { parseKeyValues } from './qemu-opts.js'
import type { Image, SnapshotSpec } from '../block/types.js'

export function parseSnapshotParam (text: string): SnapshotSpec | string {
  if (!text.startsWith('snapshot.')) return text
  const spec: SnapshotSpec = {}
  for (const [k, v] of parseKeyValues(text)) {
    if (k === 'snapshot.id') spec.id = v
    else if (k === 'snapshot.name') spec.name = v
    else throw new QemuError(`Invalid parameter '${k}'`)
  }
  return spec
}

interface SnapshotLookup {
  findSnapshot?(spec: SnapshotSpec): unknown
  openSnapshot?(snap: unknown): Promise<Image>
}

export async function openSnapshotParam (img: Image, text: string): Promise<Image> {
  const param = parseSnapshotParam(text)
  const lookup = img as Image & SnapshotLookup
  let found: unknown
  if (lookup.findSnapshot) {
    // a bare string is an id first, then a name
    found = typeof param === 'string' ? lookup.findSnapshot({ id: param }) ?? lookup.findSnapshot({ name: param }) : lookup.findSnapshot(param)
  }
  if (found === undefined || !lookup.openSnapshot) throw new QemuError('Failed to load snapshot: Can\'t find snapshot')
  return lookup.openSnapshot(found)
}
