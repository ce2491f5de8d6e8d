// Property: on backing chains of 1-3 layers of mixed sizes and formats,
// built by the real qemu-img/qemu-io with random writes, zero writes and
// discards, every byte qimg reads equals a plain Buffer model of the same
// operations (bytes a discard leaves undefined are taken from qemu-img
// convert, which must agree with qimg too).
import t from 'tap'
import fc from 'fast-check'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'

interface Op { kind: 'write' | 'zero' | 'zero-unmap' | 'discard', offset: number, length: number, pattern: number }
interface Layer { format: 'raw' | 'qcow2', size: number, options: string, ops: Op[] }

const K = 1024

const layerArb = (bottom: boolean): fc.Arbitrary<Layer> => fc.record({
  format: bottom ? fc.constantFrom<'raw' | 'qcow2'>('raw', 'qcow2') : fc.constant<'qcow2'>('qcow2'),
  // sizes in sectors: odd sizes, smaller and larger than the layer below
  size: fc.integer({ min: 1, max: 768 }).map(s => s * 512),
  options: fc.constantFrom('cluster_size=512', 'cluster_size=4k', 'cluster_size=64k', 'cluster_size=16k,extended_l2=on',
    'cluster_size=64k,extended_l2=on', 'compat=0.10,cluster_size=4k', 'cluster_size=4k,refcount_bits=1'),
  ops: fc.array(fc.record({
    kind: fc.constantFrom<Op['kind']>('write', 'write', 'zero', 'zero-unmap', 'discard'),
    // offsets and lengths as fractions of the layer, resolved once its size is known
    offset: fc.integer({ min: 0, max: 1 << 20 }),
    length: fc.integer({ min: 1, max: 96 * K }),
    pattern: fc.integer({ min: 1, max: 255 }),
  }), { maxLength: 8 }),
})

const chainArb = fc.integer({ min: 1, max: 3 }).chain(depth =>
  fc.tuple(layerArb(true), ...Array.from({ length: depth - 1 }, () => layerArb(false))))

/** qemu-io commands for the ops, clipped to the layer; applies them to the model too. */
function apply (layer: Layer, model: Buffer, defined: Uint8Array): string[] {
  const cmds: string[] = []
  for (const op of layer.ops) {
    const offset = op.offset % layer.size
    const length = Math.min(op.length, layer.size - offset)
    switch (op.kind) {
      case 'write':
        cmds.push(`write -P ${op.pattern} ${offset} ${length}`)
        model.fill(op.pattern, offset, offset + length)
        defined.fill(1, offset, offset + length)
        break
      case 'zero': case 'zero-unmap':
        cmds.push(`write -z ${op.kind === 'zero-unmap' ? '-u ' : ''}${offset} ${length}`)
        model.fill(0, offset, offset + length)
        defined.fill(1, offset, offset + length)
        break
      case 'discard':
        // after a discard the block layer promises nothing about the contents
        cmds.push(`discard ${offset} ${length}`)
        defined.fill(0, offset, offset + length)
    }
  }
  return cmds
}

async function readAll (file: string): Promise<Buffer> {
  const img = await openImage(file)
  try {
    const buf = Buffer.alloc(img.size)
    // uneven pieces, so reads start and end inside clusters and cross layers
    for (let pos = 0, step = 12345; pos < img.size; pos += step, step = step * 3 % 200000 + 512) {
      await img.read(buf.subarray(pos, Math.min(pos + step, img.size)), pos)
    }
    return buf
  } finally {
    await img.close()
  }
}

t.test('reads through random chains equal a Buffer model', async t => {
  const root = t.testdir()
  let run = 0
  await fc.assert(fc.asyncProperty(chainArb, async layers => {
    const dir = path.join(root, String(run++))
    fs.mkdirSync(dir)
    let model = Buffer.alloc(0)
    let defined = new Uint8Array(0)
    let below: { name: string, format: string } | undefined
    layers.forEach((layer, i) => {
      const name = `l${i}.${layer.format}`
      const next = Buffer.alloc(layer.size)
      model.copy(next, 0, 0, Math.min(model.length, layer.size))
      const nextDefined = new Uint8Array(layer.size).fill(1)
      nextDefined.set(defined.subarray(0, Math.min(defined.length, layer.size)))
      model = next
      defined = nextDefined
      const opts = layer.format === 'qcow2' ? ['-o', layer.options] : []
      const backing = below ? ['-b', below.name, '-F', below.format] : []
      qemuImgOk(['create', '-q', '-f', layer.format, ...opts, ...backing, name, String(layer.size)], { cwd: dir })
      const cmds = apply(layer, model, defined)
      if (cmds.length) qemuIoOk(cmds, name, ['-f', layer.format], { cwd: dir })
      below = { name, format: layer.format }
    })
    const top = path.join(dir, below!.name)
    const got = await readAll(top)
    qemuImgOk(['convert', '-O', 'raw', top, path.join(dir, 'out.raw')])
    const qemu = fs.readFileSync(path.join(dir, 'out.raw'))
    if (!got.equals(qemu)) throw new Error(`qimg and qemu-img differ (md5 ${md5(got)} vs ${md5(qemu)})`)
    for (let i = 0; i < model.length; i++) {
      if (defined[i] && got[i] !== model[i]) throw new Error(`byte ${i}: read ${got[i]}, model ${model[i]}`)
    }
    fs.rmSync(dir, { recursive: true })
  }), { numRuns: 25, seed: Number(process.env.QIMG_PROPERTY_SEED ?? 20240601), endOnFailure: true })
  t.pass('25 random chains read back exactly')
})

function md5 (b: Buffer): string {
  return crypto.createHash('md5').update(b).digest('hex')
}
