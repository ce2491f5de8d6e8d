// Finding an image of a backing chain by the name a user gives (commit -b,
// rebase -b), with qemu's rules.
import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import { hasProtocol, resolveRelative } from '../block/paths.js'
import type { Image } from '../block/types.js'

/** Canonical form of a file name for comparing chain members (symlinks resolved when the file exists). */
function canonical (name: string): string {
  try { return realpathSync(name) } catch { return resolve(name) }
}

/**
 * The layer `name` refers to, as qemu finds a base: a backing file name as
 * recorded matches directly; otherwise the name is taken relative to the
 * directory of each image whose backing file is being compared.
 */
export function findInChain (top: Image, name: string): Image | undefined {
  for (let img = top; img.backing; img = img.backing) {
    if (img.backingName === name) return img.backing
    if (hasProtocol(name)) continue
    if (canonical(resolveRelative(img.filename, name)) === canonical(img.backing.filename)) return img.backing
  }
  return undefined
}
