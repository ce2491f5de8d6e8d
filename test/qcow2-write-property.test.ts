// Property test of the qcow2 write path: random sequences of writes, zero
// writes, discards, compressed writes and resizes, applied to an image made
// by the real qemu-img and to a Buffer model. Afterwards qimg's read-back,
// qemu-img's own view (convert -O raw) and the model agree, and qemu-img
// check finds neither corruption nor leaks.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { WriteModel, fillBytes, qemuCheck, qemuRaw, type Op } from './helpers/write-model.js'

interface Config {
  clusterBits: number
  refcountBits: number
  extendedL2: boolean
  v3: boolean
  backing: boolean
  compression: 'zlib' | 'zstd'
  clusters: number
  tailSectors: number
}

const configArb: fc.Arbitrary<Config> = fc.record({
  clusterBits: fc.constantFrom(9, 12, 16, 21),
  refcountBits: fc.constantFrom(1, 16, 64),
  extendedL2: fc.boolean(),
  v3: fc.boolean(),
  backing: fc.boolean(),
  compression: fc.constantFrom('zlib' as const, 'zstd' as const),
  clusters: fc.integer({ min: 2, max: 40 }),
  tailSectors: fc.integer({ min: 0, max: 3 }),
}).map(c => {
  // what qemu-img create accepts: extended L2 needs v3 and clusters >= 16 KiB; other refcount widths and zstd need v3
  const v3 = c.v3 || c.extendedL2 || c.refcountBits !== 16 || c.compression === 'zstd'
  const extendedL2 = c.extendedL2 && c.clusterBits >= 14
  const clusters = c.clusterBits === 21 ? Math.min(c.clusters, 6) : c.clusters
  return { ...c, v3, extendedL2, clusters }
})

function opsArb (cs: number, maxClusters: number): fc.Arbitrary<Op[]> {
  const maxSize = maxClusters * cs
  const range = fc.tuple(fc.integer({ min: 0, max: maxSize - 1 }), fc.integer({ min: 1, max: 3 * cs }))
  return fc.array(fc.oneof(
    { weight: 5, arbitrary: fc.tuple(range, fc.nat(255)).map(([[off, len], seed]) => ({ kind: 'write' as const, off, len, seed })) },
    { weight: 2, arbitrary: fc.tuple(range, fc.boolean()).map(([[off, len], unmap]) => ({ kind: 'zero' as const, off, len, unmap })) },
    { weight: 2, arbitrary: range.map(([off, len]) => ({ kind: 'discard' as const, off, len })) },
    { weight: 2, arbitrary: fc.tuple(fc.nat(maxClusters - 1), fc.nat(255), fc.boolean()).map(([cluster, seed, noisy]) => ({ kind: 'compressed' as const, cluster, seed, noisy })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: maxClusters + 8 }).map(clusters => ({ kind: 'resize' as const, clusters })) },
  ), { minLength: 1, maxLength: 14 })
}

/** Keep an operation inside the current size (sector-aligned where qemu needs it). */
function fit (op: Op, size: number, cs: number): Op | null {
  switch (op.kind) {
    case 'write': case 'zero': case 'discard': {
      if (op.off >= size) return null
      return { ...op, len: Math.min(op.len, size - op.off) }
    }
    case 'compressed':
      return op.cluster * cs < size ? op : null
    default:
      return op
  }
}

let runNo = 0

async function runCase (t: Test, dir: string, cfg: Config, rawOps: Op[]): Promise<boolean> {
  const cs = 2 ** cfg.clusterBits
  const size = cfg.clusters * cs + cfg.tailSectors * 512
  const name = path.join(dir, `img${++runNo}.qcow2`)
  const opts = [`cluster_size=${cs}`, `compat=${cfg.v3 ? '1.1' : '0.10'}`]
  if (cfg.v3) opts.push(`refcount_bits=${cfg.refcountBits}`, `extended_l2=${cfg.extendedL2 ? 'on' : 'off'}`, `compression_type=${cfg.compression}`)
  let backing: Buffer | null = null
  if (cfg.backing) {
    const base = path.join(dir, `base${runNo}.qcow2`)
    // a backing file longer than the image, so that growing must hide its tail
    const bsize = size + 2 * cs
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${cs}`, base, String(bsize)])
    qemuIoOk([`write -P 0xa5 0 ${bsize}`], base)
    backing = Buffer.alloc(bsize, 0xa5)
    opts.push(`backing_file=${base}`, 'backing_fmt=qcow2')
  }
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', opts.join(','), name, String(size)])
  const model = new WriteModel({ clusterSize: cs, v3: cfg.v3, backing }, size)
  const img = await openImage(name, { readOnly: false })
  const log: string[] = []
  try {
    for (const raw of rawOps) {
      const op = fit(raw, model.size, cs)
      if (!op) continue
      log.push(JSON.stringify(op))
      switch (op.kind) {
        case 'write': await img.write(fillBytes(op.len, op.seed), op.off); break
        case 'zero': await img.writeZeroes(op.off, op.len, { unmap: op.unmap }); break
        case 'discard': await img.discard(op.off, op.len); break
        case 'compressed': {
          const off = op.cluster * cs
          await img.writeCompressed!(fillBytes(Math.min(cs, model.size - off), op.seed, op.noisy), off)
          break
        }
        case 'resize': {
          const newSize = op.clusters * cs
          if (!cfg.v3 && backing && backing.length > model.size && newSize > model.size) {
            // version 2 cannot hide a longer backing file: qemu refuses, and so must we
            await t.rejects(img.resize!(newSize, { shrink: true }), { message: 'Failed to zero out new clusters: Operation not supported' })
            continue
          }
          await img.resize!(newSize, { shrink: true })
          break
        }
      }
      model.apply(op)
    }
    const back = Buffer.alloc(model.size)
    await img.read(back, 0)
    if (!back.equals(model.data)) { t.fail(`qimg read-back differs: ${JSON.stringify(cfg)} ${log.join(' ')}`); return false }
  } finally {
    await img.close()
  }
  const check = qemuCheck(name)
  if (check.corruptions || check.leaks || check.checkErrors) {
    t.fail(`qemu-img check: ${JSON.stringify(cfg)} ${log.join(' ')}\n${check.raw}`)
    return false
  }
  const viaQemu = qemuRaw(name, dir)
  if (!viaQemu.equals(model.data)) {
    t.fail(`qemu-img convert differs from the model: ${JSON.stringify(cfg)} ${log.join(' ')}`)
    return false
  }
  fs.rmSync(name)
  return true
}

t.test('random write sequences read back like the model and pass qemu-img check', async t => {
  const dir = t.testdir()
  await fc.assert(fc.asyncProperty(configArb.chain(cfg => fc.tuple(fc.constant(cfg), opsArb(2 ** cfg.clusterBits, cfg.clusters + 1))),
    async ([cfg, ops]) => runCase(t, dir, cfg, ops)), { numRuns: 60, endOnFailure: true })
  t.pass('all sequences agreed')
})

t.test('every cluster size, refcount width, L2 kind, compat and backing combination', async t => {
  const dir = t.testdir()
  for (const clusterBits of [9, 12, 16, 21]) {
    for (const refcountBits of [1, 16, 64]) {
      for (const extendedL2 of [false, true]) {
        for (const backing of [false, true]) {
          for (const v3 of [false, true]) {
            const cfg = { clusterBits, refcountBits, extendedL2, v3, backing, compression: 'zlib' as const, clusters: clusterBits === 21 ? 3 : 9, tailSectors: 1 }
            if (!v3 && (extendedL2 || refcountBits !== 16)) continue
            if (extendedL2 && clusterBits < 14) continue
            const cs = 2 ** clusterBits
            const ops: Op[] = [
              { kind: 'write', off: 100, len: cs + 700, seed: 1 },
              { kind: 'compressed', cluster: 3, seed: 2, noisy: false },
              { kind: 'compressed', cluster: 4, seed: 3, noisy: true },
              { kind: 'zero', off: cs / 2, len: cs, unmap: true },
              { kind: 'discard', off: 0, len: 2 * cs },
              { kind: 'write', off: 3 * cs + 512, len: 1024, seed: 4 },
              { kind: 'resize', clusters: 12 },
              { kind: 'write', off: 11 * cs - 10, len: 20, seed: 5 },
              { kind: 'zero', off: 5 * cs, len: 3 * cs, unmap: false },
              { kind: 'resize', clusters: 2 },
            ]
            t.ok(await runCase(t, dir, cfg, ops), JSON.stringify(cfg))
          }
        }
      }
    }
  }
})
