// `qimg umount`: unmount first (so no request can arrive any more, and a busy
// mount is refused without disturbing its server), then ask the server to
// flush and close its images, and wait until it has.
import { realpathSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { BlockError } from '../src/cli/errors.js'
import { FS_TYPE, findMount, fusermount, mountPointPath, processStartTime, readPidFile } from './runtime.js'

/** how long a server may take to flush and exit after the unmount */
const EXIT_WAIT_MS = 10 * 60_000

export async function unmountServer (name: string): Promise<void> {
  let abs = mountPointPath(name)
  let entry = findMount(abs)
  if (!entry) {
    // a symlink to the mount point: resolving it stats the mount root, so only now
    try { abs = realpathSync(abs) } catch { /* not mounted, reported below */ }
    entry = findMount(abs)
  }
  if (!entry) throw new BlockError(`'${name}' is not mounted`, 'EINVAL')
  if (entry.fsType !== FS_TYPE) throw new BlockError(`'${name}' is not a qimg mount (it is ${entry.fsType})`, 'EINVAL')
  const server = readPidFile(abs)
  const problem = await fusermount(abs, false)
  if (problem !== undefined && findMount(abs)?.fsType === FS_TYPE) {
    if (/busy/i.test(problem)) throw new BlockError(`'${name}' is busy: a file on it is still open`, 'EBUSY')
    throw new BlockError(`Cannot unmount '${name}': ${problem}`, 'EIO')
  }
  if (!server) return
  try { process.kill(server.pid, 'SIGTERM') } catch { return }
  const deadline = Date.now() + EXIT_WAIT_MS
  while (processStartTime(server.pid) === server.start) {
    if (Date.now() > deadline) throw new BlockError(`The server of '${name}' (pid ${server.pid}) has not finished flushing`, 'ETIMEDOUT')
    await sleep(20)
  }
}
