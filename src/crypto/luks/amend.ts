// Key slot management (`qemu-img amend -o state=...,new-secret=...` for the
// luks format, `encrypt.*` for qcow2), with qemu-img 7.2's rules and
// messages (observed):
//   state=active   needs new-secret, refuses old-secret; fills `keyslot`
//                  or the first inactive slot; refuses to overwrite an
//                  active slot unless --force
//   state=inactive refuses new-secret; erases `keyslot` and/or the slots
//                  that old-secret opens; refuses to erase the last active
//                  slot(s) unless --force
// An erased slot gets random material, state DEAD, zero iterations and salt.
import { randomBytes } from 'node:crypto'
import { BlockError } from '../../cli/errors.js'
import type { SecretStore } from '../../block/secrets.js'
import type { CreateOptionSpec } from '../../block/types.js'
import { LUKS_NUM_SLOTS, LUKS_SALT_LEN, LUKS_SECTOR, LUKS_SLOT_DISABLED, LUKS_SLOT_ENABLED, encodeLuksHeader, keyMaterialBytes } from './header.js'
import { DEFAULT_ITER_TIME, makeKeySlot, parseOptNumber } from './create.js'
import { tryKeySlot } from './unlock.js'
import { LUKS_ITER_TIME_OPTION } from './option-specs.js'
import { passwordSecret } from '../secret.js'
import type { LuksVolume } from './volume.js'

export interface LuksAmendOptions {
  state: 'active' | 'inactive'
  keyslot?: number
  newSecret?: Buffer
  oldSecret?: Buffer
  iterTime?: number | bigint
}

function fail (message: string): never {
  throw new BlockError(message, 'EINVAL')
}

/** The amend options of the luks format, with qemu-img's `-o help` texts, in its order. */
export const LUKS_AMEND_OPTIONS: CreateOptionSpec[] = [
  LUKS_ITER_TIME_OPTION,
  { name: 'keyslot', type: 'number', help: 'Select a single keyslot to modify explicitly' },
  { name: 'new-secret', type: 'string', help: 'New secret to set in the matching keyslots. Empty string to erase' },
  { name: 'old-secret', type: 'string', help: 'Select all keyslots that match this password' },
  { name: 'state', type: 'string', help: 'Select new state of affected keyslots (active/inactive)' },
]

/**
 * Parse amend option values (without their "encrypt." prefix); `prefix` is
 * how the user spelled them, for number messages.
 */
export function parseLuksAmendOptions (values: Record<string, string>, secrets: SecretStore, prefix = ''): LuksAmendOptions {
  let keyslot: number | undefined
  let iterTime: bigint | undefined
  if (values.keyslot !== undefined) keyslot = Number(parseOptNumber(`${prefix}keyslot`, values.keyslot) & 0xffffffffn)
  if (values['iter-time'] !== undefined) iterTime = parseOptNumber(`${prefix}iter-time`, values['iter-time'])
  const state = values.state
  if (state === undefined) fail('Parameter \'state\' is missing')
  if (state !== 'active' && state !== 'inactive') fail(`Parameter 'state' does not accept value '${state}'`)
  const secret = (id: string | undefined): Buffer | undefined => id === undefined ? undefined : passwordSecret(secrets, id)
  return { state, keyslot, newSecret: secret(values['new-secret']), oldSecret: secret(values['old-secret']), iterTime }
}

/** Apply an amend to an unlocked volume, writing the changed slots and header. */
export async function amendLuks (vol: LuksVolume, o: LuksAmendOptions, force: boolean): Promise<void> {
  const h = vol.header
  const write = vol.io.write
  if (!write) throw new BlockError('LUKS header is read-only', 'EACCES')
  if (!vol.masterKey) throw new BlockError('LUKS volume is locked', 'EACCES')
  const active = (i: number): boolean => h.slots[i].active === LUKS_SLOT_ENABLED
  const checkSlot = (i: number): void => {
    if (i >= LUKS_NUM_SLOTS) fail(`Invalid keyslot ${i} specified, must be between 0 and ${LUKS_NUM_SLOTS - 1}`)
  }

  if (o.state === 'active') {
    if (!o.newSecret) fail('\'new-secret\' is required to activate a keyslot')
    if (o.oldSecret) fail('\'old-secret\' must not be given when activating keyslots')
    let slot: number
    if (o.keyslot !== undefined) {
      checkSlot(o.keyslot)
      slot = o.keyslot
      if (active(slot) && !force) fail(`Refusing to overwrite active keyslot ${slot} - please erase it first`)
    } else {
      slot = h.slots.findIndex(s => s.active !== LUKS_SLOT_ENABLED)
      if (slot < 0) fail('Can\'t add a keyslot - all keyslots are in use')
    }
    const made = await makeKeySlot(vol.spec, vol.masterKey, o.newSecret, o.iterTime ?? DEFAULT_ITER_TIME, h.slots[slot].keyOffset)
    // material first, then the header that points at it
    await write(made.material, made.slot.keyOffset * LUKS_SECTOR)
    h.slots[slot] = made.slot
    await write(encodeLuksHeader(h), 0)
    return
  }

  if (o.newSecret) fail('\'new-secret\' must not be given when erasing keyslots')
  if (o.keyslot === undefined && !o.oldSecret) {
    fail('To erase keyslot(s), either explicit keyslot index or the password currently contained in them must be given')
  }
  const activeCount = h.slots.filter((_, i) => active(i)).length
  let victims: number[]
  if (o.keyslot !== undefined) {
    checkSlot(o.keyslot)
    const i = o.keyslot
    if (!active(i)) fail(`Given keyslot ${i} is already erased (inactive) `)
    if (o.oldSecret && !await tryKeySlot(h, vol.spec, h.slots[i], o.oldSecret, (off, len) => vol.io.read(off, len))) {
      fail(`Given keyslot ${i} doesn't contain the given old password for erase operation`)
    }
    if (activeCount === 1 && !force) {
      fail(`Attempt to erase the only active keyslot ${i} which will erase all the data in the image irreversibly - refusing operation`)
    }
    victims = [i]
  } else {
    victims = []
    for (let i = 0; i < LUKS_NUM_SLOTS; i++) {
      if (active(i) && await tryKeySlot(h, vol.spec, h.slots[i], o.oldSecret!, (off, len) => vol.io.read(off, len))) victims.push(i)
    }
    if (victims.length === 0) fail('No keyslots match given (old) password for erase operation')
    if (victims.length === activeCount && !force) {
      fail('All the active keyslots match the (old) password that was given and erasing them will erase all the data in the image irreversibly - refusing operation')
    }
  }
  for (const i of victims) {
    const s = h.slots[i]
    // header first: a crash leaves a disabled slot rather than an enabled one with garbage
    h.slots[i] = { ...s, active: LUKS_SLOT_DISABLED, iterations: 0, salt: Buffer.alloc(LUKS_SALT_LEN) }
    await write(encodeLuksHeader(h), 0)
    await write(randomBytes(keyMaterialBytes(h.keyBytes, s.stripes)), s.keyOffset * LUKS_SECTOR)
  }
}
