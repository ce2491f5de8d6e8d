// Running qimg and the real qemu-img on identical copies of the same files
// (for commands that change images: snapshot, commit, rebase), and the
// views used to compare what each left behind.
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImg, qemuImgOk, qimg, type RunResult } from './run.js'

export interface Twins {
  /** files the real qemu-img works on */
  q: string
  /** files qimg works on */
  w: string
}

/** Build files with `setup(dir)` once, then copy them for each tool (sparseness kept). */
export function twins (t: Test, setup: (dir: string) => void): Twins {
  const root = t.testdir()
  const src = path.join(root, 'src')
  fs.mkdirSync(src)
  setup(src)
  const q = path.join(root, 'q')
  const w = path.join(root, 'w')
  execFileSync('cp', ['-a', '--sparse=always', src, q])
  execFileSync('cp', ['-a', '--sparse=always', src, w])
  return { q, w }
}

/** Snapshot dates in listings: each tool took its snapshots at its own time. */
export function maskDates (text: string): string {
  return text.replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'YYYY-MM-DD hh:mm:ss')
}

/**
 * Run the same command line in each copy (file names relative to it);
 * output and exit code must match (snapshot dates masked).
 */
export function runBoth (t: Test, d: Twins, args: string[], name = args.join(' '), opts: { stdout?: boolean } = {}): { qemu: RunResult, ours: RunResult } {
  const qemu = qemuImg(args, { cwd: d.q })
  const ours = qimg(args, { cwd: d.w })
  if (opts.stdout !== false) t.equal(maskDates(ours.stdout), maskDates(qemu.stdout), `stdout: ${name}`)
  t.equal(ours.stderr, qemu.stderr, `stderr: ${name}`)
  t.equal(ours.code, qemu.code, `exit code: ${name}`)
  return { qemu, ours }
}

/** A qcow2 file's bytes with the snapshot dates (which no two runs share) zeroed. */
export function withoutDates (file: string): Buffer {
  const f = fs.readFileSync(file)
  if (f.length < 72 || f.readUInt32BE(0) !== 0x514649fb) return f
  const count = f.readUInt32BE(60)
  let pos = Number(f.readBigUInt64BE(64))
  for (let i = 0; i < count && pos + 40 <= f.length; i++) {
    f.fill(0, pos + 16, pos + 24)
    pos = (pos + 40 + f.readUInt32BE(pos + 36) + f.readUInt16BE(pos + 12) + f.readUInt16BE(pos + 14) + 7) & ~7
  }
  return f
}

/** Every file of the copies is the same byte for byte (snapshot dates aside), holes included. */
export function sameFiles (t: Test, d: Twins, names: string[]): void {
  for (const n of names) {
    const a = withoutDates(path.join(d.q, n))
    const b = withoutDates(path.join(d.w, n))
    t.ok(a.equals(b), `${n}: same bytes as qemu-img's result`)
    t.same(dataRuns(path.join(d.w, n)), dataRuns(path.join(d.q, n)), `${n}: same holes`)
  }
}

/** Where a file has data (SEEK_DATA/SEEK_HOLE, through python for portability of the test). */
function dataRuns (file: string): string {
  return execFileSync('python3', ['-c', `
import os,sys
fd=os.open(sys.argv[1],os.O_RDONLY); size=os.fstat(fd).st_size; pos=0; out=[]
while pos<size:
  try: d=os.lseek(fd,pos,os.SEEK_DATA)
  except OSError: break
  h=os.lseek(fd,d,os.SEEK_HOLE); out.append('%x-%x'%(d,h)); pos=h
print(' '.join(out), size)`, file], { encoding: 'utf8' })
}

function qemuJson (args: string[], cwd: string): unknown {
  return JSON.parse(qemuImgOk([...args, '--output=json'], { cwd }))
}

/** qemu-img info --backing-chain as JSON, without what differs between any two runs (dates, disk usage). */
export function infoOf (dir: string, file: string): unknown {
  const info = qemuJson(['info', '-U', '--backing-chain', file], dir) as Array<Record<string, unknown>>
  for (const layer of info) {
    delete layer['actual-size']
    for (const s of (layer.snapshots ?? []) as Array<Record<string, unknown>>) {
      delete s['date-sec']
      delete s['date-nsec']
    }
  }
  return info
}

/** qemu-img map as JSON; `offsets: false` drops host offsets (where qemu's own layout is not deterministic). */
export function mapOf (dir: string, file: string, offsets = true): unknown {
  const map = qemuJson(['map', '-U', file], dir) as Array<Record<string, unknown>>
  if (offsets) return map
  const merged: Array<Record<string, unknown>> = []
  for (const e of map) {
    delete e.offset
    const last = merged[merged.length - 1]
    if (last && ['depth', 'present', 'zero', 'data'].every(k => last[k] === e[k])) last.length = (last.length as number) + (e.length as number)
    else merged.push(e)
  }
  return merged
}

/** qemu-img check finds no corruption and no leaks. */
export function checkClean (t: Test, dir: string, file: string): void {
  const r = qemuImg(['check', '-U', '--output=json', file], { cwd: dir })
  const c = JSON.parse(r.stdout || '{}') as Record<string, number>
  t.same([r.code, c['check-errors'] ?? 0, c.corruptions ?? 0, c.leaks ?? 0], [0, 0, 0, 0], `qemu-img check ${file} is clean`, { check: r.stdout + r.stderr })
}

/** The guest view through qemu-img convert -O raw. */
export function rawOf (dir: string, file: string): Buffer {
  const out = path.join(dir, `.${path.basename(file)}.${process.pid}.raw`)
  qemuImgOk(['convert', '-U', '-O', 'raw', file, out], { cwd: dir })
  const b = fs.readFileSync(out)
  fs.unlinkSync(out)
  return b
}

/** The same image in both copies reads the same (qemu-img compare, through each copy's own chain). */
export function sameContent (t: Test, d: Twins, file: string, name = file): void {
  const r = qemuImg(['compare', '-U', path.join(d.q, file), path.join(d.w, file)])
  t.equal(r.code, 0, `${name}: reads as qemu's result`, { compare: r.stdout + r.stderr })
}
