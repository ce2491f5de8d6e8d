// The Linux scheduling policy for commands that move bulk data.
//
// A copy is the JS thread handing reads and writes to libuv's pool and
// getting them back. Under the default policy a pool thread that wakes up
// usually preempts the thread that woke it, so on a machine with two cores
// the JS thread stops at nearly every hand-off while another thread copies.
// SCHED_BATCH, Linux's policy for throughput work (no privileges needed),
// turns wake-up preemption off: measured on convert, 8-13% less wall time.
// The pool's threads are created by the first operation handed to the pool
// and inherit the policy of the thread that starts them, so this must run
// before a command does any I/O there. It also means a long copy yields to interactive
// programs rather than the other way round, as `chrt -b` would arrange.
//
// The pool's size is set here too, for the same reason and at the same time
// (libuv reads UV_THREADPOOL_SIZE when it starts the pool): as many threads
// as CPUs, from 2 to libuv's default of 4. Copying between files in the page
// cache is CPU work; on two CPUs four threads only take turns, and the
// writers spin on the target file's lock. Measured on a 512 MiB convert -O
// raw: ~10 ms (4%) faster with two, on ext4 and tmpfs, and no slower when
// the source has to come from disk.
import { native } from './native.js'

let done = false

export function preferThroughput (): void {
  if (done) return
  done = true
  const n = native()
  n?.setBatchScheduling?.()
  const size = threadPoolSize(process.env, n?.usableCpus?.())
  if (size !== undefined) process.env.UV_THREADPOOL_SIZE = size
}

/** The pool size to ask for: undefined when the user chose one, or the CPU count is unknown. */
export function threadPoolSize (env: NodeJS.ProcessEnv, cpus: number | undefined): string | undefined {
  if (env.UV_THREADPOOL_SIZE !== undefined || cpus === undefined || cpus <= 0) return undefined
  return String(Math.max(2, Math.min(4, cpus)))
}
