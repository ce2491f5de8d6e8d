// Random backing chains (2-4 layers, mixed cluster sizes and versions, data,
// zero, compressed and discarded clusters, internal snapshots) built with
// the real qemu-img/qemu-io; then one random commit, rebase or snapshot
// operation run by both tools on identical copies. Every layer must read the
// same, be allocated the same (host offsets too, except where qemu's own
// commit layout is not deterministic), show the same info and pass check.
import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { checkClean, infoOf, mapOf, runBoth, sameContent, sameFiles, twins } from './helpers/twins.js'

const SEED = Number(process.env.CHAINS_SEED ?? 20240607)
const ROUNDS = Number(process.env.CHAINS_ROUNDS ?? 8)

class Rand {
  constructor (private x: number) {}
  next (): number {
    this.x = (Math.imul(this.x ^ (this.x >>> 15), 0x2c1b3c6d) + 0x6b43a9b5) >>> 0
    return this.x
  }

  int (n: number): number { return this.next() % n }
  pick<T> (a: readonly T[]): T { return a[this.int(a.length)] }
  chance (p: number): boolean { return this.next() / 2 ** 32 < p }
}

interface Layer { name: string, fmt: 'qcow2' | 'raw', size: number, cluster: number }

/** Build the chain in `dir`; returns its layers, bottom first. */
function buildChain (r: Rand, dir: string): Layer[] {
  const n = 2 + r.int(3)
  const layers: Layer[] = []
  for (let i = 0; i < n; i++) {
    const raw = i === 0 && r.chance(0.25)
    const cluster = r.pick([512, 4096, 65536, 65536, 131072])
    const size = (2 + r.int(3)) << 20
    const name = raw ? 'L0.raw' : `L${i}.qcow2`
    const l: Layer = { name, fmt: raw ? 'raw' : 'qcow2', size, cluster: raw ? 512 : cluster }
    const opts = [`cluster_size=${cluster}`]
    if (r.chance(0.15)) opts.push('compat=0.10')
    else {
      if (cluster >= 16384 && r.chance(0.2)) opts.push('extended_l2=on')
      if (r.chance(0.15)) opts.push(`refcount_bits=${r.pick([8, 32, 64])}`)
    }
    const below = layers[i - 1]
    const backing = below ? ['-b', below.name, '-F', below.fmt] : []
    qemuImgOk(['create', '-q', '-f', l.fmt, ...(raw ? [] : ['-o', opts.join(',')]), ...backing, name, String(size)], { cwd: dir })
    qemuIoOk(randomIo(r, l), path.join(dir, name), ['-f', l.fmt])
    if (!raw && r.chance(0.3)) {
      qemuImgOk(['snapshot', '-c', `snap${i}`, name], { cwd: dir })
      qemuIoOk(randomIo(r, l, false), path.join(dir, name), ['-f', l.fmt])
    }
    layers.push(l)
  }
  return layers
}

/** qemu-io commands: compressed clusters first (they need unallocated clusters), then data, zeros, discards. */
function randomIo (r: Rand, l: Layer, compressed = true): string[] {
  const cmds: string[] = []
  if (l.fmt === 'qcow2' && compressed) {
    const clusters = new Set<number>()
    for (let k = 0; k < 3; k++) clusters.add(r.int(l.size / l.cluster))
    for (const c of clusters) cmds.push(`write -c -P ${1 + r.int(250)} ${c * l.cluster} ${l.cluster}`)
  }
  for (let k = 0; k < 6; k++) {
    const len = 1 + r.int(l.size >> 3)
    const off = r.int(l.size - len)
    const a = off - (off % 512)
    const b = Math.min(l.size, Math.ceil((off + len) / 512) * 512)
    const what = r.int(10)
    if (what < 6) cmds.push(`write -P ${1 + r.int(250)} ${a} ${b - a}`)
    else if (what < 8) cmds.push(`write -z ${r.chance(0.5) ? '-u ' : ''}${a} ${b - a}`)
    else if (l.fmt === 'qcow2') cmds.push(`discard ${a} ${b - a}`)
  }
  return cmds
}

/** A random operation on the chain, as a qemu-img command line, and whether qemu's resulting host layout is deterministic. */
function randomOp (r: Rand, layers: Layer[]): { args: string[], deterministic: boolean } {
  const top = layers[layers.length - 1]
  const qcow2 = layers.filter(l => l.fmt === 'qcow2')
  switch (r.int(6)) {
    case 0: case 1: {
      const base = r.chance(0.5) ? layers[r.int(layers.length - 1)] : undefined
      return { args: ['commit', ...(r.chance(0.3) ? ['-d'] : []), ...(base ? ['-b', base.name] : []), top.name], deterministic: false }
    }
    case 2: case 3: {
      const target = r.pick([...layers.slice(0, -1).map(l => [l.name, l.fmt]), ['']])
      return { args: ['rebase', '-b', target[0], ...(target[1] ? ['-F', target[1]] : []), top.name], deterministic: true }
    }
    case 4: {
      const target = r.pick(layers.slice(0, -1))
      return { args: ['rebase', '-u', '-b', target.name, '-F', target.fmt, top.name], deterministic: true }
    }
    default: {
      const l = r.pick(qcow2)
      const action = r.pick([['-c', 'new'], ['-a', 'snap' + layers.indexOf(l)], ['-d', 'snap' + layers.indexOf(l)], ['-l']])
      return { args: ['snapshot', ...action, l.name], deterministic: true }
    }
  }
}

t.test(`random chains (seed ${SEED})`, async t => {
  const r = new Rand(SEED)
  for (let round = 0; round < ROUNDS; round++) {
    let layers: Layer[] = []
    const d = twins(t, dir => { layers = buildChain(r, dir) })
    const op = randomOp(r, layers)
    const name = `round ${round}: ${layers.map(l => `${l.name}(${l.size >> 20}M,${l.cluster})`).join(' <- ')}; ${op.args.join(' ')}`
    t.comment(name)
    runBoth(t, d, op.args, name)
    for (const l of layers) {
      sameContent(t, d, l.name, `${name}: ${l.name}`)
      t.same(mapOf(d.w, l.name, op.deterministic), mapOf(d.q, l.name, op.deterministic), `${name}: ${l.name} allocated as qemu's`)
      if (l.fmt === 'qcow2') checkClean(t, d.w, l.name)
    }
    const top = layers[layers.length - 1].name
    t.same(infoOf(d.w, top), infoOf(d.q, top), `${name}: same info`)
    if (op.deterministic) sameFiles(t, d, layers.map(l => l.name))
  }
})
