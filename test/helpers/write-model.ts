// A plain-Buffer model of a qcow2 image under writes, for property tests of
// the write path: what every operation must leave the guest view as.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

export type Op =
  | { kind: 'write', off: number, len: number, seed: number }
  | { kind: 'zero', off: number, len: number, unmap: boolean }
  | { kind: 'discard', off: number, len: number }
  | { kind: 'compressed', cluster: number, seed: number, noisy: boolean }
  | { kind: 'resize', clusters: number }

export interface ModelConfig {
  clusterSize: number
  v3: boolean
  /** backing file contents (guest view), or null */
  backing: Buffer | null
}

/** Deterministic bytes: a counter pattern, or LCG noise that does not compress. */
export function fillBytes (len: number, seed: number, noisy = false): Buffer {
  const b = Buffer.allocUnsafe(len)
  let x = (seed * 2654435761) >>> 0
  for (let i = 0; i < len; i++) {
    if (noisy) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[i] = x >>> 24 } else b[i] = (seed + (i >> 3)) & 0xff
  }
  return b
}

export class WriteModel {
  data: Buffer
  constructor (readonly cfg: ModelConfig, public size: number) {
    this.data = Buffer.alloc(size)
    if (cfg.backing) cfg.backing.copy(this.data, 0, 0, Math.min(size, cfg.backing.length))
  }

  private backingAt (off: number, len: number): Buffer {
    const out = Buffer.alloc(len)
    const b = this.cfg.backing
    if (b && off < b.length) b.copy(out, 0, off, Math.min(b.length, off + len))
    return out
  }

  apply (op: Op): void {
    const cs = this.cfg.clusterSize
    switch (op.kind) {
      case 'write': fillBytes(op.len, op.seed).copy(this.data, op.off); break
      case 'zero': this.data.fill(0, op.off, op.off + op.len); break
      case 'discard': {
        const start = Math.ceil(op.off / cs) * cs
        const end = op.off + op.len >= this.size ? this.size : Math.floor((op.off + op.len) / cs) * cs
        if (start >= end) break
        if (!this.cfg.v3 && this.cfg.backing) this.backingAt(start, end - start).copy(this.data, start)
        else this.data.fill(0, start, end)
        break
      }
      case 'compressed': {
        const off = op.cluster * cs
        fillBytes(Math.min(cs, this.size - off), op.seed, op.noisy).copy(this.data, off)
        break
      }
      case 'resize': {
        const size = op.clusters * cs
        const next = Buffer.alloc(size)
        this.data.copy(next, 0, 0, Math.min(size, this.size))
        // a longer backing file must not show through the new area
        this.data = next
        this.size = size
        break
      }
    }
  }
}

/** qemu-img check --output=json of a file, parsed (exit code 0..3 are reports). */
export function qemuCheck (file: string): { corruptions: number, leaks: number, checkErrors: number, raw: string } {
  const r = spawnSync('qemu-img', ['check', '--output=json', file], { encoding: 'utf8' })
  let j: Record<string, number> = {}
  try { j = JSON.parse(r.stdout) } catch { /* reported below */ }
  return {
    corruptions: j.corruptions ?? (r.status === 2 ? 1 : 0),
    leaks: j.leaks ?? 0,
    checkErrors: j['check-errors'] ?? (r.stdout ? 0 : 1),
    raw: r.stdout + r.stderr,
  }
}

/** The guest view through the real qemu-img (convert -O raw). */
export function qemuRaw (file: string, dir: string): Buffer {
  const out = path.join(dir, `raw-${process.pid}-${Math.random().toString(36).slice(2)}.img`)
  const r = spawnSync('qemu-img', ['convert', '-O', 'raw', file, out], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`qemu-img convert failed: ${r.stderr}`)
  const b = fs.readFileSync(out)
  fs.unlinkSync(out)
  return b
}
