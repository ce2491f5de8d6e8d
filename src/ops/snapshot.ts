// `snapshot`: list, create, apply (revert to) and delete internal snapshots
// of an opened image, with qemu-img's lookup rules and messages.
import { BlockError, QemuError, strerror } from '../cli/errors.js'
import type { Image, SnapshotInfo } from '../block/types.js'

/** errno numbers qemu prints in "-95 (Operation not supported)" */
const ERRNO: Record<string, number> = {
  EPERM: 1, ENOENT: 2, EIO: 5, ENOMEM: 12, EACCES: 13, EEXIST: 17, EINVAL: 22, EFBIG: 27, ENOSPC: 28,
  EROFS: 30, ERANGE: 34, ENOTSUP: 95, EOPNOTSUPP: 95,
}

function errnoOfError (e: unknown): string {
  if (e instanceof BlockError) return e.errno
  throw e
}

export function listSnapshots (img: Image): SnapshotInfo[] {
  return img.listSnapshots?.() ?? []
}

/** The snapshot `-a` means: the one with that id, else the first with that name. */
function byIdOrName (img: Image, idOrName: string): SnapshotInfo | undefined {
  const list = listSnapshots(img)
  return list.find(s => s.id === idOrName) ?? list.find(s => s.name === idOrName)
}

/** The wall-clock time with microseconds, as qemu records it. */
export function snapshotDate (): { dateSec: number, dateNsec: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000)
  return { dateSec: Math.floor(us / 1e6), dateNsec: (us % 1e6) * 1000 }
}

export async function createSnapshot (img: Image, name: string, date = snapshotDate()): Promise<void> {
  try {
    if (!img.createSnapshot) throw new BlockError('Operation not supported', 'ENOTSUP')
    await img.createSnapshot(name, date)
  } catch (e) {
    const errno = errnoOfError(e)
    throw new QemuError(`Could not create snapshot '${name}': -${ERRNO[errno] ?? 5} (${strerror(errno)})`)
  }
}

export async function applySnapshot (img: Image, name: string): Promise<void> {
  if (!img.applySnapshot) throw new QemuError(`Could not apply snapshot '${name}': Block driver does not support snapshots`)
  try {
    // an unknown name is still handed to the driver: its own refusals come first
    await img.applySnapshot({ id: byIdOrName(img, name)?.id ?? name })
  } catch (e) {
    throw new QemuError(`Could not apply snapshot '${name}': Failed to load snapshot: ${strerror(errnoOfError(e))}`)
  }
}

/** `-d` looks the snapshot up by name only (the first one with that name). */
export async function deleteSnapshot (img: Image, name: string): Promise<void> {
  const snap = listSnapshots(img).find(s => s.name === name)
  if (!snap || !img.deleteSnapshot) throw new QemuError(`Could not delete snapshot '${name}': snapshot not found`)
  try {
    await img.deleteSnapshot({ id: snap.id })
  } catch (e) {
    throw new QemuError(`Could not delete snapshot '${name}': ${(e as Error).message}: ${strerror(errnoOfError(e))}`)
  }
}
