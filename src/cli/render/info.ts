// Human-readable `info`, as qemu-img prints it (bdrv_image_info_dump).
import { qdictOrder, type JsonValue } from '../qjson.js'
import { sizeToStr } from '../sizes.js'
import type { ImageInfo } from '../../ops/info.js'
import { snapshotTable } from './snapshots.js'

type Obj = { [k: string]: JsonValue | undefined }

/** qemu's dump of a QObject: dict keys with '-' shown as ' ', lists as [i]: */
export function dumpQObject (v: JsonValue, indent: number): string {
  if (Array.isArray(v)) {
    let s = ''
    v.forEach((e, i) => {
      const composite = e !== null && typeof e === 'object'
      s += `${' '.repeat(indent * 4)}[${i}]:${composite ? '\n' : ' '}${dumpQObject(e, indent + 1)}${composite ? '' : '\n'}`
    })
    return s
  }
  if (v !== null && typeof v === 'object') {
    const o = v as Obj
    let s = ''
    for (const k of qdictOrder(Object.keys(o).filter(k => o[k] !== undefined))) {
      const e = o[k]!
      const composite = e !== null && typeof e === 'object'
      s += `${' '.repeat(indent * 4)}${k.replace(/-/g, ' ')}:${composite ? '\n' : ' '}${dumpQObject(e, indent + 1)}${composite ? '' : '\n'}`
    }
    return s
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  return String(v)
}

export function renderInfoHuman (info: ImageInfo): string {
  let s = `image: ${info.filename}\n`
  s += `file format: ${info.format}\n`
  const vsize = info['virtual-size'] as number
  s += `virtual size: ${sizeToStr(vsize)} (${vsize} bytes)\n`
  s += info['actual-size'] !== undefined ? `disk size: ${sizeToStr(info['actual-size'] as number)}\n` : 'disk size: unavailable\n'
  // qemu prints "encrypted" before the cluster size
  if (info.encrypted) s += 'encrypted: yes\n'
  if (info['cluster-size'] !== undefined) s += `cluster_size: ${info['cluster-size']}\n`
  if (info['dirty-flag']) s += 'cleanly shut down: no\n'
  if (info['backing-filename'] !== undefined) {
    s += `backing file: ${info['backing-filename']}`
    if (info['full-backing-filename'] !== undefined && info['full-backing-filename'] !== info['backing-filename']) {
      s += ` (actual path: ${info['full-backing-filename']})`
    }
    s += '\n'
    if (info['backing-filename-format'] !== undefined) s += `backing file format: ${info['backing-filename-format']}\n`
  }
  const snaps = info.snapshots as Obj[] | undefined
  if (snaps && snaps.length > 0) {
    s += 'Snapshot list:\n'
    s += snapshotTable(snaps)
  }
  const fs = info['format-specific'] as Obj | undefined
  if (fs) {
    s += 'Format specific information:\n'
    s += dumpQObject(fs.data as JsonValue, 1)
  }
  return s
}
