// Comparing qimg with qemu-img without starting a new Node process per
// command: a worker process runs qimg's CLI for each request (see
// qimg-worker.mjs). Same results as helpers/run.ts's qimg(), much faster.
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { Test } from 'tap'
import { ROOT, qemuImg, type RunResult } from './run.js'

let worker: ChildProcess | undefined
let nextId = 1
const waiting = new Map<number, (r: RunResult) => void>()

function getWorker (): ChildProcess {
  if (worker) return worker
  worker = fork(path.join(ROOT, 'test/helpers/qimg-worker.mjs'), [], {
    env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  worker.on('message', (m: RunResult & { id: number }) => {
    const done = waiting.get(m.id)
    waiting.delete(m.id)
    done?.({ stdout: m.stdout, stderr: m.stderr, code: m.code })
  })
  worker.unref()
  worker.channel?.unref()
  return worker
}

let queue: Promise<unknown> = Promise.resolve()

/** qimg (as "qemu-img") with these arguments in `cwd`. Requests run one after another. */
export function qimgFast (args: string[], cwd: string): Promise<RunResult> {
  const run = queue.then(() => request(args, cwd))
  queue = run.catch(() => undefined)
  return run
}

function request (args: string[], cwd: string): Promise<RunResult> {
  const w = getWorker()
  const id = nextId++
  return new Promise(resolve => {
    waiting.set(id, resolve)
    w.channel?.ref()
    w.send({ id, args, cwd })
  }).then(r => {
    if (waiting.size === 0) w.channel?.unref()
    return r as RunResult
  })
}

/** Like sameAsQemu, through the worker. */
export async function sameAsQemuFast (t: Test, args: string[], cwd: string, name?: string): Promise<void> {
  const a = await qimgFast(args, cwd)
  const b = qemuImg(args, { cwd })
  const label = name ?? args.join(' ')
  t.equal(a.stdout, b.stdout, `stdout: ${label}`)
  t.equal(a.stderr, b.stderr, `stderr: ${label}`)
  t.equal(a.code, b.code, `exit code: ${label}`)
}
