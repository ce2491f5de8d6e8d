// Commands run with a target directory on a tiny tmpfs, to see how they fail
// when the disk fills up: each in a mount namespace of its own (unshare -m),
// so nothing stays mounted and tests can run side by side.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { NODE_IN_SHELL, QIMG_BIN } from './run.js'

export interface SmallFsRun { code: number, stderr: string, stdout: string }

export type SmallFs =
  | { run: (tool: 'qemu-img' | 'qimg', args: string, then?: string) => SmallFsRun }
  | { cannot: string }

/**
 * `run(tool, args, then)` runs `tool ARGS` in `dir` with `dir/small` a fresh
 * tmpfs of `size` (e.g. '1m'), then the shell command `then` (its output is
 * `stdout`: what the tool left on the tmpfs is gone afterwards); `cannot`
 * says why no tmpfs can be mounted here.
 */
export function smallFs (dir: string, size: string): SmallFs {
  fs.mkdirSync(path.join(dir, 'small'), { recursive: true })
  const inNamespace = (cmd: string): SmallFsRun => {
    const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=${size} none "${dir}/small" && ${cmd}`], { cwd: dir, encoding: 'utf8' })
    return { code: r.status ?? 1, stderr: r.stderr, stdout: r.stdout }
  }
  const probe = inNamespace('true')
  if (probe.code !== 0) return { cannot: `cannot mount a tmpfs here: ${probe.stderr.trim()}` }
  return {
    run: (tool, args, then) => {
      const cmd = tool === 'qemu-img' ? `qemu-img ${args}` : `${NODE_IN_SHELL} "${QIMG_BIN}" ${args}`
      return inNamespace(then ? `${cmd}; rc=$?; ${then}; exit $rc` : cmd)
    },
  }
}
