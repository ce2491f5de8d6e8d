// Running `convert` through both tools into separate targets and checking
// that the targets are the same: bytes, and where the file has holes.
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import { qemuImg, qemuImgOk, type RunResult } from './run.js'
import { qimgFast } from './fast.js'

export function md5 (file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex')
}

/** Allocation of a raw file as qemu-img map sees it (data/hole runs of the host file). */
export function fileMap (file: string): string {
  return qemuImgOk(['map', '--output=json', '-f', 'raw', file])
}

export interface ConvertBothOptions {
  /** the target file names get this suffix (default .raw) */
  ext?: string
  /** prepare each target before its run (e.g. create it for -n) */
  prepare?: (target: string) => void
  name?: string
}

/**
 * `convert ARGS... SRCS TARGET` with each tool; `args` holds everything
 * before the target. Same stdout, stderr and exit code; on success the same
 * bytes and the same holes.
 */
export async function convertBoth (t: Test, dir: string, args: string[], opts: ConvertBothOptions = {}): Promise<{ qemu: RunResult, ours: RunResult }> {
  const ext = opts.ext ?? '.raw'
  const qTarget = path.join(dir, `qemu-out${ext}`)
  const mTarget = path.join(dir, `qimg-out${ext}`)
  const name = opts.name ?? args.join(' ')
  const results: RunResult[] = []
  for (const target of [qTarget, mTarget]) {
    fs.rmSync(target, { force: true })
    opts.prepare?.(target)
  }
  const qemu = qemuImg(['convert', ...args, qTarget], { cwd: dir })
  const ours = await qimgFast(['convert', ...args, mTarget], dir)
  results.push(qemu, ours)
  t.equal(ours.code, qemu.code, `exit code: ${name}`)
  t.equal(ours.stdout, qemu.stdout, `stdout: ${name}`)
  t.equal(ours.stderr.split(mTarget).join('TARGET'), qemu.stderr.split(qTarget).join('TARGET'), `stderr: ${name}`)
  if (qemu.code === 0 && ours.code === 0) {
    t.equal(md5(mTarget), md5(qTarget), `same bytes: ${name}`)
    t.equal(fs.statSync(mTarget).size, fs.statSync(qTarget).size, `same size: ${name}`)
    t.equal(fileMap(mTarget), fileMap(qTarget), `same holes: ${name}`)
  }
  return { qemu, ours }
}
