// Images of every kind the real qemu-img/qemu-io write, built at test time:
// cluster sizes, compat levels, refcount widths, extended L2, compression,
// preallocation, external data files, backing chains, snapshots, bitmaps.
// Each is filled with a reproducible mix of writes, zero writes, discards
// and compressed writes.
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './run.js'

export interface Variant {
  name: string
  /** create the image(s) in `dir`; returns the top image's file name (relative to dir) */
  build (dir: string): string
  /** internal snapshots whose views are worth reading */
  snapshots?: string[]
}

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface OpsOptions {
  size: number
  clusterSize: number
  /** whole-cluster compressed writes (not with data files or preallocation) */
  compressed?: boolean
  count?: number
}

/**
 * qemu-io commands: compressed writes of distinct whole clusters first (qemu
 * compresses only into unallocated clusters), then unaligned writes, zero
 * writes (some with -u) and discards.
 */
export function randomOps (seed: number, o: OpsOptions): string[] {
  const rnd = prng(seed)
  const int = (n: number) => Math.floor(rnd() * n)
  const ops: string[] = []
  const clusters = Math.floor(o.size / o.clusterSize)
  if (o.compressed && clusters > 0) {
    const picked = new Set<number>()
    for (let i = 0; i < 3; i++) picked.add(int(clusters))
    for (const c of picked) ops.push(`write -c -P ${1 + int(250)} ${c * o.clusterSize} ${o.clusterSize}`)
  }
  if (o.size === 0) return ops
  const count = o.count ?? 12
  for (let i = 0; i < count; i++) {
    const maxLen = Math.min(o.size, Math.max(o.clusterSize * 3, 4096))
    const len = 1 + int(maxLen)
    const off = int(o.size - len + 1)
    switch (int(4)) {
      case 0: case 1: ops.push(`write -P ${1 + int(250)} ${off} ${len}`); break
      case 2: ops.push(`write -z ${rnd() < 0.5 ? '-u ' : ''}${off} ${len}`); break
      default: ops.push(`discard ${off} ${len}`)
    }
  }
  return ops
}

/** qemu-io in the image's directory, where qemu looks for external data files */
function io (file: string, ops: string[], fmt = 'qcow2'): void {
  if (ops.length) qemuIoOk(ops, path.basename(file), ['-f', fmt], { cwd: path.dirname(file) })
}

/** qemu-img create in `dir` (names in options, like data_file, are relative to it as qemu stores them) */
function qcow2 (dir: string, name: string, size: number, opts: string[], extra: string[] = []): string {
  qemuImgOk(['create', '-q', '-f', 'qcow2', ...(opts.length ? ['-o', opts.join(',')] : []), ...extra, name, String(size)], { cwd: dir })
  return path.join(dir, name)
}

const MiB = 1 << 20
const K = 1024

function plain (name: string, cs: number, opts: string[], seed: number, size = 5 * MiB, compressed = true): Variant {
  return {
    name,
    build (dir) {
      const f = qcow2(dir, 'img.qcow2', size, [`cluster_size=${cs}`, ...opts])
      io(f, randomOps(seed, { size, clusterSize: cs, compressed }))
      return 'img.qcow2'
    },
  }
}

/** The variants the read, map and info tests share. */
export function qcow2Variants (): Variant[] {
  const v: Variant[] = []
  let seed = 1
  for (const cs of [512, 4 * K, 64 * K, 2 * MiB]) {
    for (const compat of ['0.10', '1.1']) {
      v.push(plain(`cluster ${cs} compat ${compat}`, cs, [`compat=${compat}`], seed++, cs === 2 * MiB ? 8 * MiB : 3 * MiB))
    }
  }
  for (const bits of [1, 2, 4, 8, 32, 64]) v.push(plain(`refcount_bits ${bits}`, 64 * K, [`refcount_bits=${bits}`], seed++, 3 * MiB))
  v.push(plain('refcount_bits 1, 512-byte clusters', 512, ['refcount_bits=1'], seed++, 2 * MiB))
  for (const cs of [16 * K, 64 * K, 2 * MiB]) {
    v.push(plain(`extended_l2 cluster ${cs}`, cs, ['extended_l2=on'], seed++, cs === 2 * MiB ? 8 * MiB : 3 * MiB))
  }
  v.push(plain('zstd', 64 * K, ['compression_type=zstd'], seed++))
  v.push(plain('zstd extended_l2 32k', 32 * K, ['compression_type=zstd', 'extended_l2=on'], seed++))
  for (const p of ['metadata', 'falloc', 'full']) v.push(plain(`preallocation=${p}`, 64 * K, [`preallocation=${p}`], seed++, 3 * MiB, false))
  v.push(plain('lazy_refcounts', 64 * K, ['lazy_refcounts=on'], seed++, 3 * MiB))
  v.push(plain('odd size', 64 * K, [], seed++, 3 * MiB + 12345 - 12345 % 512))
  v.push(plain('empty image', 64 * K, [], seed++, 0, false))
  for (const raw of [false, true]) {
    const s = seed++
    v.push({
      name: `data_file${raw ? ' data_file_raw' : ''}`,
      build (dir) {
        const size = 3 * MiB
        const f = qcow2(dir, 'img.qcow2', size, ['data_file=img.data', ...(raw ? ['data_file_raw=on'] : [])])
        io(f, randomOps(s, { size, clusterSize: 64 * K }))
        return 'img.qcow2'
      },
    })
  }
  const s = seed++
  v.push({
    name: 'data_file extended_l2 preallocation=metadata',
    build (dir) {
      const size = 3 * MiB
      const f = qcow2(dir, 'img.qcow2', size, ['data_file=img.data', 'extended_l2=on', 'preallocation=metadata'])
      io(f, randomOps(s, { size, clusterSize: 64 * K }))
      return 'img.qcow2'
    },
  })
  v.push(...chainVariants())
  v.push({
    name: 'internal snapshots',
    snapshots: ['first', 'second'],
    build (dir) {
      const size = 4 * MiB
      const f = qcow2(dir, 'img.qcow2', size, [])
      io(f, randomOps(101, { size, clusterSize: 64 * K, compressed: true }))
      qemuImgOk(['snapshot', '-c', 'first', f])
      io(f, randomOps(102, { size, clusterSize: 64 * K }))
      qemuImgOk(['snapshot', '-c', 'second', f])
      io(f, randomOps(103, { size, clusterSize: 64 * K }))
      return 'img.qcow2'
    },
  })
  v.push({
    name: 'snapshot of a smaller disk',
    snapshots: ['small'],
    build (dir) {
      const f = qcow2(dir, 'img.qcow2', 1 * MiB, [])
      io(f, ['write -P 7 0 1M'])
      qemuImgOk(['snapshot', '-c', 'small', f])
      qemuImgOk(['resize', '-q', f, '3M'])
      io(f, ['write -P 8 512k 2M'])
      return 'img.qcow2'
    },
  })
  v.push({
    name: 'persistent bitmaps',
    build (dir) {
      const f = qcow2(dir, 'img.qcow2', 4 * MiB, [])
      qemuImgOk(['bitmap', '--add', f, 'b0'])
      qemuImgOk(['bitmap', '--add', '-g', '128k', f, 'second bitmap'])
      qemuImgOk(['bitmap', '--add', '--disable', f, 'off'])
      io(f, randomOps(104, { size: 4 * MiB, clusterSize: 64 * K }))
      return 'img.qcow2'
    },
  })
  return v
}

/** Backing chains up to 3 deep, of mixed sizes and formats, named relative to the image's directory. */
export function chainVariants (): Variant[] {
  return [
    {
      name: 'chain raw <- qcow2 <- qcow2, sizes 1M/3M/4M',
      build (dir) {
        const base = path.join(dir, 'base.raw')
        qemuImgOk(['create', '-q', '-f', 'raw', base, '1M'])
        io(base, randomOps(201, { size: MiB, clusterSize: 4096 }), 'raw')
        const mid = qcow2(dir, 'mid.qcow2', 3 * MiB, [], ['-b', 'base.raw', '-F', 'raw'])
        io(mid, randomOps(202, { size: 3 * MiB, clusterSize: 64 * K, compressed: true }))
        const top = qcow2(dir, 'top.qcow2', 4 * MiB, [], ['-b', 'mid.qcow2', '-F', 'qcow2'])
        io(top, randomOps(203, { size: 4 * MiB, clusterSize: 64 * K, compressed: true }))
        return 'top.qcow2'
      },
    },
    {
      name: 'chain qcow2 <- qcow2 <- qcow2, shrinking, extended L2 in the middle',
      build (dir) {
        const base = qcow2(dir, 'base.qcow2', 4 * MiB, ['cluster_size=4096'])
        io(base, randomOps(211, { size: 4 * MiB, clusterSize: 4096, compressed: true }))
        const mid = qcow2(dir, 'mid.qcow2', 2 * MiB, ['extended_l2=on'], ['-b', 'base.qcow2', '-F', 'qcow2'])
        io(mid, randomOps(212, { size: 2 * MiB, clusterSize: 64 * K }))
        const top = qcow2(dir, 'top.qcow2', 3 * MiB, ['cluster_size=16384'], ['-b', 'mid.qcow2', '-F', 'qcow2'])
        io(top, randomOps(213, { size: 3 * MiB, clusterSize: 16384, compressed: true }))
        return 'top.qcow2'
      },
    },
    {
      name: 'chain in a subdirectory, backing format probed',
      build (dir) {
        fs.mkdirSync(path.join(dir, 'sub'))
        const base = qcow2(dir, 'sub/base.qcow2', 2 * MiB, [])
        io(base, randomOps(221, { size: 2 * MiB, clusterSize: 64 * K }))
        const top = qcow2(dir, 'sub/top.qcow2', 2 * MiB, [], ['-b', 'base.qcow2', '-F', 'qcow2'])
        io(top, randomOps(222, { size: 2 * MiB, clusterSize: 64 * K }))
        dropBackingFormat(top)
        return 'sub/top.qcow2'
      },
    },
  ]
}

/** Turn the backing format extension into an unknown one, so readers must probe. */
export function dropBackingFormat (file: string): void {
  const fd = fs.openSync(file, 'r+')
  try {
    const head = Buffer.alloc(4096)
    fs.readSync(fd, head, 0, head.length, 0)
    let pos = head.readUInt32BE(4) >= 3 ? head.readUInt32BE(100) : 72
    while (pos + 8 <= head.length) {
      const type = head.readUInt32BE(pos)
      const len = head.readUInt32BE(pos + 4)
      if (type === 0) break
      if (type === 0xe2792aca) {
        const b = Buffer.alloc(4)
        b.writeUInt32BE(0x7e57e57e)
        fs.writeSync(fd, b, 0, 4, pos)
        return
      }
      pos += 8 + ((len + 7) & ~7)
    }
    throw new Error(`no backing format extension in ${file}`)
  } finally {
    fs.closeSync(fd)
  }
}
