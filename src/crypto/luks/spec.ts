// Between a LUKS header's strings ("aes", "xts-plain64", "sha256", key
// bytes 64) and the algorithms they name (aes-256, xts, plain64, sha256),
// and the header's consistency checks, with qemu's messages and in qemu's
// order (observed by feeding qemu-img 7.2 damaged headers).
import { BlockError } from '../../cli/errors.js'
import {
  CIPHER_MODES, HASH_ALGS, IVGEN_ALGS, cipherByLuksName, digestBytes,
  type CipherMode, type HashAlg, type IvGenAlg,
} from '../algorithms.js'
import type { SectorCipherSpec } from '../sector-cipher.js'
import {
  LUKS_SECTOR, LUKS_SLOT_DISABLED, LUKS_SLOT_ENABLED, LUKS_STRIPES, keyMaterialBytes, type LuksHeader,
} from './header.js'

export interface LuksSpec extends SectorCipherSpec {
  /** PBKDF2, AF splitter and digest hash */
  hash: HashAlg
}

/** Key slots start after the first 4 KiB (the header, aligned). */
export const LUKS_HEADER_SECTORS = 4096 / LUKS_SECTOR

function fail (message: string): never {
  throw new BlockError(message, 'EINVAL')
}

function parseHash (name: string): HashAlg {
  if (!(HASH_ALGS as readonly string[]).includes(name)) fail(`Hash algorithm '${name}' not supported`)
  return name as HashAlg
}

function cipherFor (name: string, keyBytes: number) {
  const alg = cipherByLuksName(name, keyBytes)
  if (!alg) fail(`Algorithm '${name}' with key size ${keyBytes} bytes not supported`)
  return alg
}

/** The layout checks qemu makes before it looks at the algorithms. */
export function checkLuksLayout (h: LuksHeader): void {
  if (h.payloadOffset < LUKS_HEADER_SECTORS) fail('LUKS payload is overlapping with the header')
  if (h.mkDigestIter === 0) fail('LUKS key iteration count is zero')
  const sectors = h.slots.map(s => keyMaterialBytes(h.keyBytes, s.stripes) / LUKS_SECTOR)
  h.slots.forEach((s, i) => {
    if (s.stripes !== LUKS_STRIPES) fail(`Keyslot ${i} is corrupted (stripes ${s.stripes} != ${LUKS_STRIPES})`)
    if (s.active !== LUKS_SLOT_ENABLED && s.active !== LUKS_SLOT_DISABLED) fail(`Keyslot ${i} state (active/disable) is corrupted`)
    if (s.active === LUKS_SLOT_ENABLED && s.iterations === 0) fail(`Keyslot ${i} iteration count is zero`)
    if (s.keyOffset < LUKS_HEADER_SECTORS) fail(`Keyslot ${i} is overlapping with the LUKS header`)
    if (s.keyOffset + sectors[i] > h.payloadOffset) fail(`Keyslot ${i} is overlapping with the encrypted payload`)
    for (let j = i + 1; j < h.slots.length; j++) {
      const o = h.slots[j]
      if (s.keyOffset < o.keyOffset + sectors[j] && o.keyOffset < s.keyOffset + sectors[i]) {
        fail(`Keyslots ${i} and ${j} are overlapping in the header`)
      }
    }
  })
}

/** The algorithms a header names, validated as qemu does when opening. */
export function luksSpecFromHeader (h: LuksHeader): LuksSpec {
  checkLuksLayout(h)
  const dash = h.cipherMode.indexOf('-')
  if (dash < 0) fail(`Unexpected cipher mode string format '${h.cipherMode}'`)
  const modeName = h.cipherMode.slice(0, dash)
  if (!(CIPHER_MODES as readonly string[]).includes(modeName)) fail(`Cipher mode '${modeName}' not supported`)
  const mode = modeName as CipherMode
  const alg = cipherFor(h.cipherName, mode === 'xts' ? Math.floor(h.keyBytes / 2) : h.keyBytes)
  const ivPart = h.cipherMode.slice(dash + 1)
  const colon = ivPart.indexOf(':')
  const ivgenName = colon < 0 ? ivPart : ivPart.slice(0, colon)
  // qemu parses an IV hash even where the generator ignores it ("plain64:sha1")
  const ivgenHash = colon < 0 ? undefined : parseHash(ivPart.slice(colon + 1))
  const hash = parseHash(h.hashSpec)
  if (!(IVGEN_ALGS as readonly string[]).includes(ivgenName)) fail(`IV generator '${ivgenName}' not supported`)
  const ivgen = ivgenName as IvGenAlg
  if (ivgen === 'essiv') {
    if (ivgenHash === undefined) fail('Missing IV generator hash specification')
    cipherFor(h.cipherName, digestBytes(ivgenHash))
  }
  return { alg, mode, ivgen, ivgenHash: ivgen === 'essiv' ? ivgenHash : undefined, hash }
}

/** The header's cipher-mode string for a spec ("xts-plain64", "cbc-essiv:sha256"). */
export function luksModeString (mode: CipherMode, ivgen: IvGenAlg, ivgenHash?: HashAlg): string {
  return ivgenHash !== undefined ? `${mode}-${ivgen}:${ivgenHash}` : `${mode}-${ivgen}`
}
