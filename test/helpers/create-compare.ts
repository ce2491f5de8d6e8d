// Creating the same image with qimg and the real qemu-img and comparing
// the results: what each printed, the exact bytes, where the files have
// holes, and qemu-img check's verdict on ours.
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImg, type RunResult } from './run.js'
import { qimgFast } from './fast.js'

export interface CreateComparison {
  qemu: RunResult
  ours: RunResult
  qemuDir: string
  ourDir: string
}

/** Run `create ARGS` in two sibling directories (same relative names), one per tool. */
export async function createBoth (t: Test, root: string, args: string[], setup?: (dir: string) => void): Promise<CreateComparison> {
  const qemuDir = fs.mkdtempSync(path.join(root, 'q-'))
  const ourDir = fs.mkdtempSync(path.join(root, 'o-'))
  setup?.(qemuDir)
  setup?.(ourDir)
  const qemu = qemuImg(['create', ...args], { cwd: qemuDir })
  const ours = await qimgFast(['create', ...args], ourDir)
  t.equal(ours.stdout, qemu.stdout, `stdout: create ${args.join(' ')}`)
  t.equal(ours.stderr, qemu.stderr, `stderr: create ${args.join(' ')}`)
  t.equal(ours.code, qemu.code, `exit code: create ${args.join(' ')}`)
  return { qemu, ours, qemuDir, ourDir }
}

/** The data/hole layout of a file as qemu-img map sees it through the raw driver. */
export function holes (file: string): string {
  return qemuImg(['map', '-f', 'raw', '--output=json', file]).stdout
}

/** Compare one file both tools wrote: existence, size, bytes, holes; and check ours. */
export function sameFile (t: Test, c: CreateComparison, name: string, opts: { check?: string[] } = {}): void {
  const q = path.join(c.qemuDir, name)
  const o = path.join(c.ourDir, name)
  t.equal(fs.existsSync(o), fs.existsSync(q), `${name} exists in both or neither`)
  if (!fs.existsSync(q) || !fs.existsSync(o)) return
  const qb = fs.readFileSync(q)
  const ob = fs.readFileSync(o)
  t.equal(ob.length, qb.length, `${name}: file size`)
  t.ok(ob.equals(qb), `${name}: same bytes`)
  t.equal(holes(o), holes(q), `${name}: same data/hole layout`)
  if (opts.check) {
    const r = qemuImg(['check', ...opts.check, name], { cwd: c.ourDir })
    t.equal(r.code, 0, `${name}: qemu-img check passes (${r.stdout.trim()} ${r.stderr.trim()})`)
  }
}
