// QAPI QCryptoBlockInfoLUKS, as `qemu-img info` shows a LUKS volume (the
// standalone luks format's format-specific data, and qcow2's `encrypt`).
// Keys are inserted in schema order; the printers apply QEMU's dict order.
import type { JsonValue } from '../../cli/qjson.js'
import { LUKS_SECTOR, LUKS_SLOT_ENABLED, type LuksHeader } from './header.js'
import type { LuksSpec } from './spec.js'

export type InfoObject = { [k: string]: JsonValue | undefined }

export function luksInfo (h: LuksHeader, spec: LuksSpec): InfoObject {
  const info: InfoObject = {
    'cipher-alg': spec.alg.name,
    'cipher-mode': spec.mode,
    'ivgen-alg': spec.ivgen,
  }
  if (spec.ivgen === 'essiv') info['ivgen-hash-alg'] = spec.ivgenHash
  info['hash-alg'] = spec.hash
  info['payload-offset'] = h.payloadOffset * LUKS_SECTOR
  info['master-key-iters'] = h.mkDigestIter
  info.uuid = h.uuid
  info.slots = h.slots.map(s => {
    const active = s.active === LUKS_SLOT_ENABLED
    const slot: InfoObject = { active }
    if (active) {
      slot.iters = s.iterations
      slot.stripes = s.stripes
    }
    slot['key-offset'] = s.keyOffset * LUKS_SECTOR
    return slot
  })
  return info
}
