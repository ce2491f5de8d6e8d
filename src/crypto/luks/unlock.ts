// Unlocking a LUKS1 volume: for each active key slot, derive the slot key
// from the password (PBKDF2 with the slot's salt and iterations), decrypt
// the slot's key material (the payload cipher, sectors numbered from 0 at
// the material's start), merge the AF stripes, and accept the candidate
// whose PBKDF2 digest equals the header's master key digest.
import { timingSafeEqual } from 'node:crypto'
import { BlockError } from '../../cli/errors.js'
import { SectorCipher } from '../sector-cipher.js'
import { afMerge } from './afsplit.js'
import { LUKS_DIGEST_LEN, LUKS_SECTOR, LUKS_SLOT_ENABLED, keyMaterialBytes, type LuksHeader, type LuksKeySlot } from './header.js'
import { pbkdf2Async } from './pbkdf.js'
import type { LuksSpec } from './spec.js'

/** Reads `length` bytes at `offset` from the start of the LUKS header. */
export type ReadLuks = (offset: number, length: number) => Promise<Buffer>

export const INVALID_PASSWORD = 'Invalid password, cannot unlock any keyslot'

/** Does `key` match the header's master key digest? */
export async function checkMasterKey (h: LuksHeader, spec: LuksSpec, key: Buffer): Promise<boolean> {
  const digest = await pbkdf2Async(key, h.mkDigestSalt, h.mkDigestIter, LUKS_DIGEST_LEN, spec.hash)
  return timingSafeEqual(digest, h.mkDigest)
}

/** The master key stored in one slot under `password`, or undefined when it does not match. */
export async function tryKeySlot (h: LuksHeader, spec: LuksSpec, slot: LuksKeySlot, password: Buffer, read: ReadLuks): Promise<Buffer | undefined> {
  const slotKey = await pbkdf2Async(password, slot.salt, slot.iterations, h.keyBytes, spec.hash)
  const material = await read(slot.keyOffset * LUKS_SECTOR, keyMaterialBytes(h.keyBytes, slot.stripes))
  new SectorCipher(spec, slotKey).decrypt(material, 0)
  const candidate = afMerge(material, h.keyBytes, slot.stripes, spec.hash)
  return await checkMasterKey(h, spec, candidate) ? candidate : undefined
}

/** The master key and the slot that opened it; qemu's message when none does. */
export async function unlockLuks (h: LuksHeader, spec: LuksSpec, password: Buffer, read: ReadLuks): Promise<{ masterKey: Buffer, slot: number }> {
  for (let i = 0; i < h.slots.length; i++) {
    const slot = h.slots[i]
    if (slot.active !== LUKS_SLOT_ENABLED) continue
    const key = await tryKeySlot(h, spec, slot, password, read)
    if (key) return { masterKey: key, slot: i }
  }
  throw new BlockError(INVALID_PASSWORD, 'EACCES')
}
