// -l SNAPSHOT_PARAM (convert, measure): parsing it as qemu-img does and
// opening the snapshot's read-only view of an image.
import { BlockError, QemuError, QemuErrorLines } from './errors.js'
import type { Image, SnapshotSpec } from '../block/types.js'

/**
 * -l: "snapshot.id=ID,snapshot.name=NAME" (either or both must match), or a
 * bare ID_OR_NAME (`idOrName`: an id first, then a name).
 */
export type SnapshotParam = { spec: SnapshotSpec, idOrName: false } | { spec: { name: string }, idOrName: true }

export function parseSnapshotParam (text: string): SnapshotParam {
  if (!text.startsWith('snapshot.')) return { spec: { name: text }, idOrName: true }
  const spec: SnapshotSpec = {}
  for (const elem of text.split(',')) {
    const eq = elem.indexOf('=')
    const key = eq < 0 ? elem : elem.slice(0, eq)
    const value = eq < 0 ? 'on' : elem.slice(eq + 1)
    if (key === 'snapshot.id') spec.id = value
    else if (key === 'snapshot.name') spec.name = value
    else throw new QemuErrorLines([`Invalid parameter '${key}'`, `Failed in parsing snapshot param '${text}'`])
  }
  return { spec, idOrName: false }
}

/** The snapshot view of `img` that -l names, with qemu-img's messages. */
export async function openSnapshotParam (img: Image, param: SnapshotParam): Promise<Image> {
  const fail = (why: string): never => { throw new QemuError(`Failed to load snapshot: ${why}`) }
  if (!img.openSnapshot) fail(`Block format '${img.format}' used by device '' does not support temporarily loading internal snapshots`)
  let spec: SnapshotSpec = param.spec
  if (param.idOrName) {
    const list = img.listSnapshots?.() ?? []
    const key = param.spec.name
    const found = list.find(s => s.id === key) ?? list.find(s => s.name === key)
    if (!found) fail('Can\'t find snapshot')
    spec = { id: found!.id, name: found!.name }
  }
  try {
    return await img.openSnapshot!(spec)
  } catch (e) {
    if (e instanceof BlockError) fail(e.message)
    throw e
  }
}
