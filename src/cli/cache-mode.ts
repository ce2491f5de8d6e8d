// qemu-img's -t/-T cache modes. qimg always goes through the page cache and
// flushes where qemu would; with unsafe, flushes do nothing (the commands pass
// noFlush when they open the image). The names are validated so that scripts
// get qemu-img's error for a typo.
import { QemuError } from './errors.js'

export type CacheMode = 'none' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe'

const MODES: readonly string[] = ['none', 'off', 'writeback', 'writethrough', 'directsync', 'unsafe']

export function parseCacheMode (name: string): CacheMode {
  if (!MODES.includes(name)) throw new QemuError('Invalid cache mode')
  return (name === 'off' ? 'none' : name) as CacheMode
}

/** Whether flushes do nothing in this mode (cache.no-flush=on): only unsafe; the commands open images with noFlush then. */
export function skipsFlush (mode: string | undefined): boolean {
  return mode === 'unsafe'
}

/** O_DIRECT semantics (cache.direct=on) */
export function isDirect (mode: CacheMode): boolean {
  return mode === 'none' || mode === 'directsync'
}
