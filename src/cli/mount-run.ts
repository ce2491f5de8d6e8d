// Running a mount: open the image as the command line says, serve it, and
// stop cleanly on SIGTERM/SIGINT/SIGHUP (or `qimg umount`). Runs in the
// `qimg mount` process with --foreground, else in a detached server process
// (mount-daemon.ts) that reports readiness or its error back to `qimg mount`.
import { fork } from 'node:child_process'
import { join } from 'node:path'
import { projectRoot } from '../project-root.js'
import { QemuError } from './errors.js'
import { openForCommand, secretsFromObjects } from './image-args.js'
import { ClusterCache, DEFAULT_METADATA_CACHE } from '../block/cache.js'
import { findFormat } from '../block/registry.js'
import { MountServer, parseSnapshotParam } from '../../fuse/serve.js'
import { removePidFile, writePidFile } from '../../fuse/runtime.js'

/** Everything a mount needs, as plain data (it crosses to the server process over IPC). */
export interface MountRequest {
  image: string
  format?: string
  imageOpts: boolean
  /** --object definitions (secrets): parsed again in the server, never put on a command line */
  objects: string[]
  snapshot?: string
  overlay?: string
  writable: boolean
  cacheSize: number
  allowOther: boolean
  forceShare: boolean
  /** resolved absolute path */
  mountPoint: string
}

export interface MountHooks {
  warn(text: string): void
  log(text: string): void
}

function refuseReadOnlyFormat (format: string | undefined): void {
  if (format !== undefined && findFormat(format)?.readOnly) {
    throw new QemuError(`--writable: ${format} images are read-only; use --overlay FILE to make changes`)
  }
}

/** Open and mount; resolves once the mount is ready, with a promise for its end. */
export async function runMount (req: MountRequest, hooks: MountHooks): Promise<{ done: Promise<void> }> {
  const secrets = secretsFromObjects(req.objects)
  const clusterCache = new ClusterCache(req.cacheSize)
  const metadataCache = new ClusterCache(DEFAULT_METADATA_CACHE)
  if (req.writable && !req.imageOpts) refuseReadOnlyFormat(req.format)
  const image = await openForCommand({ name: req.image, format: req.format, imageOpts: req.imageOpts }, {
    secrets, forceShare: req.forceShare, readOnly: !req.writable, clusterCache, metadataCache, onWarning: hooks.warn,
  })
  let server: MountServer
  try {
    if (req.writable) refuseReadOnlyFormat(image.format)
    server = await MountServer.start({
      image,
      mountPoint: req.mountPoint,
      overlay: req.overlay,
      writable: req.writable,
      snapshot: req.snapshot === undefined ? undefined : parseSnapshotParam(req.snapshot),
      allowOther: req.allowOther,
      clusterCache,
      metadataCache,
      warn: hooks.warn,
      onError: hooks.log,
    })
  } catch (e) {
    await image.close().catch(() => undefined)
    throw e
  }
  writePidFile(req.mountPoint)
  const done = new Promise<void>(resolve => {
    // stopping is idempotent: a second signal while flushing must not kill us halfway
    const stop = (): void => {
      server.stop()
        .catch(e => hooks.log(`stopping: ${(e as Error).message}`))
        .finally(() => { removePidFile(req.mountPoint); resolve() })
    }
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, stop)
    // a bug must not lose what was written: log it, then flush and close as on SIGTERM
    process.on('uncaughtException', e => {
      hooks.log(`internal error: ${e.stack ?? e.message}`)
      process.exitCode = 1
      stop()
    })
  })
  return { done }
}

type DaemonMessage = { type: 'warning', text: string } | { type: 'ready' } | { type: 'error', message: string }

/** Start the server process and wait until it has mounted (or failed to). */
export function spawnMountDaemon (req: MountRequest, warn: (text: string) => void): Promise<void> {
  // tsc's output, also when this code runs from the one-file bundle
  const script = join(projectRoot(), 'dist/src/cli/mount-daemon.js')
  // detached, with no stdio of ours: callers waiting for our output are not held by the server
  const child = fork(script, [], { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] })
  return new Promise<void>((resolve, reject) => {
    let settled = false
    const finish = (err?: Error): void => {
      if (settled) return
      settled = true
      if (child.connected) child.disconnect()
      child.unref()
      if (err) reject(err); else resolve()
    }
    child.on('message', (m: DaemonMessage) => {
      if (m.type === 'warning') warn(m.text)
      else if (m.type === 'ready') finish()
      else if (m.type === 'error') finish(new QemuError(m.message))
    })
    child.on('error', e => finish(new QemuError(`Cannot start the mount server: ${e.message}`)))
    child.on('exit', (code, signal) => finish(new QemuError(`The mount server exited before the mount was ready (${signal ?? `exit code ${code}`})`)))
    child.send({ type: 'start', request: req })
  })
}
