// The background server of `qimg mount` (forked by spawnMountDaemon): takes
// the request over IPC, mounts, reports 'ready' or the error, then serves
// until signalled. If `qimg mount` went away before the mount was ready,
// nobody knows about the mount: take it down again.
import { appendFileSync } from 'node:fs'
import { runMount, type MountRequest } from './mount-run.js'

const logFile = process.env.QIMG_MOUNT_LOG

function log (text: string): void {
  if (!logFile) return
  try { appendFileSync(logFile, `${new Date().toISOString()} qimg mount[${process.pid}]: ${text}\n`) } catch { /* nowhere to report */ }
}

function send (msg: object): void {
  if (process.connected) process.send!(msg)
}

let ready = false
let orphaned = false
process.on('disconnect', () => { if (!ready) orphaned = true })

process.once('message', (msg: { type: string, request: MountRequest }) => {
  runMount(msg.request, { warn: text => send({ type: 'warning', text }), log }).then(async ({ done }) => {
    ready = true
    send({ type: 'ready' })
    if (orphaned || !process.connected) process.kill(process.pid, 'SIGTERM')
    await done
    process.exit(process.exitCode ?? 0)
  }, (e: Error) => {
    log(e.message)
    if (!process.connected) process.exit(1)
    process.send!({ type: 'error', message: e.message }, () => process.exit(1))
  })
})
