// Running `convert` through both tools into separate targets and checking
// that the targets are the same: bytes, and where the file has holes.
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import zlib from 'node:zlib'
import { qemuImg, qemuImgOk, type RunResult } from './run.js'
import { qimgFast } from './fast.js'
import { Crafted, H } from './craft.js'

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

/** A sparse raw file of `size` bytes with `parts` written at their offsets. */
export function writeRaw (file: string, size: number, parts: Array<[number, Buffer]>): void {
  fs.writeFileSync(file, '')
  fs.truncateSync(file, size)
  const fd = fs.openSync(file, 'r+')
  for (const [off, buf] of parts) fs.writeSync(fd, buf, 0, buf.length, off)
  fs.closeSync(fd)
}

/** Sectors following a pattern: D = data, Z = zeros. */
export function sectors (pattern: string): Buffer {
  const buf = Buffer.alloc(pattern.length * 512)
  for (let i = 0; i < pattern.length; i++) if (pattern[i] === 'D') buf.fill(0x5a, i * 512, (i + 1) * 512)
  return buf
}

/** Point L1 entry `index` (the first by default) 512 bytes off its L2 table: block status fails there. */
export function misalignFirstL2 (file: string, index = 0): void {
  const c = new Crafted(file)
  const entry = Number(c.getU64(H.l1Offset)) + 8 * index
  c.u64(entry, c.getU64(entry) + 0x200n)
}

/** Overwrite the start of compressed cluster `index`'s data (the first by default): reading it fails. */
export function breakFirstCompressedCluster (file: string, index = 0): void {
  const c = new Crafted(file)
  c.bytes(Number(c.getU64(firstL2Entry(c) + 8 * index) & ((1n << 54n) - 1n)), Buffer.alloc(64, 0xff))
}

/** The first L2 entry's file position (64 KiB clusters: the sector count of a compressed entry sits at bit 54). */
function firstL2Entry (c: Crafted): number {
  return Number(c.getU64(Number(c.getU64(H.l1Offset))) & 0x00fffffffffffe00n)
}

/** Cut the first compressed cluster's stream to its first sector: it ends before the cluster is full. */
export function shortenFirstCompressedCluster (file: string): void {
  const c = new Crafted(file)
  const e = firstL2Entry(c)
  c.u64(e, c.getU64(e) & ~(0xffn << 54n))
}

/**
 * Point the first compressed cluster at a stream of `data` (more than a
 * cluster's worth), appended to the file: only its first cluster counts.
 * Raw deflate unless `compress` makes another stream (a zstd frame).
 */
export function overlongFirstCompressedCluster (file: string, data: Buffer, compress: (data: Buffer) => Buffer = zlib.deflateRawSync): void {
  const c = new Crafted(file)
  const stream = compress(data)
  const at = Math.ceil(c.size() / 512) * 512
  c.bytes(at, stream)
  const sectors = BigInt(Math.ceil(stream.length / 512))
  c.u64(firstL2Entry(c), (1n << 62n) | ((sectors - 1n) << 54n) | BigInt(at))
}

/** Allocation as qemu-img map shows it, without host offsets (where clusters land in the file may differ). */
export function allocation (file: string): string {
  const runs: Array<{ start: number, length: number, flags: string }> = []
  for (const e of JSON.parse(qemuImgOk(['map', '--output=json', file])) as Array<Record<string, number | boolean>>) {
    const { start, length, offset: _offset, ...rest } = e
    const flags = JSON.stringify(rest)
    const last = runs[runs.length - 1]
    if (last && last.flags === flags) last.length += length as number
    else runs.push({ start: start as number, length: length as number, flags })
  }
  return JSON.stringify(runs)
}
