// Comparing qimg with the real qemu-img on the same command line.
import type { Test } from 'tap'
import { qimg, qemuImg, type RunOptions } from './run.js'

/** Run both tools with the same arguments; stdout, stderr and exit code must match. */
export function sameAsQemu (t: Test, args: string[], opts?: RunOptions & { name?: string }): void {
  const a = qimg(args, opts)
  const b = qemuImg(args, opts)
  const name = opts?.name ?? args.join(' ')
  t.equal(a.stdout, b.stdout, `stdout: ${name}`)
  t.equal(a.stderr, b.stderr, `stderr: ${name}`)
  t.equal(a.code, b.code, `exit code: ${name}`)
}
