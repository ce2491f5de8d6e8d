// Crash safety of amend and of storing bitmaps, by fault injection: the
// operation runs against an image whose file stops accepting writes after
// the Nth one (as if the machine died there), for every N. Whatever N,
// qemu-img check must find no corruption (leaked clusters are allowed) and
// the guest data must be what it was.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import type { Image } from '../src/block/types.js'
import { qemuImg, qemuImgOk, qemuIoOk } from './helpers/run.js'
import { qemuCheck } from './helpers/write-model.js'

class Crash extends Error {}

/** Run `op` on a copy of `file` with writes failing from the `limit`th on; returns how many writes it made. */
async function crashAt (file: string, copy: string, limit: number, op: (img: Image) => Promise<void>): Promise<number> {
  fs.copyFileSync(file, copy)
  const img = await openImage(copy, { readOnly: false, format: 'qcow2' })
  const store = img.store
  const write = store.write.bind(store)
  let writes = 0
  store.write = async (buf, off) => {
    if (writes++ >= limit) throw new Crash('crash')
    return write(buf, off)
  }
  const zero = store.zeroRange?.bind(store)
  if (zero) {
    store.zeroRange = async (off, len) => {
      if (writes++ >= limit) throw new Crash('crash')
      return zero(off, len)
    }
  }
  let crashed = false
  try {
    await op(img)
    await img.close()
  } catch (e) {
    if (!(e instanceof Crash)) throw e
    crashed = true
  }
  if (crashed) await store.close() // the process died: nothing more reaches the file
  return writes
}

function prepare (dir: string): Record<string, string> {
  const snap = path.join(dir, 'snap.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', snap, '8M'])
  qemuIoOk(['write -P 1 0 1M', 'write -P 2 3M 512k'], snap)
  qemuImgOk(['snapshot', '-c', 's1', snap])
  qemuIoOk(['write -P 3 256k 256k', 'write -z 3M 64k', 'write -z -u 6M 64k', 'write -z 512k 8k'], snap)
  qemuImgOk(['bitmap', '--add', snap, 'bm'])
  const backed = path.join(dir, 'backed.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', snap, '-F', 'qcow2', backed])
  qemuIoOk(['write -z 0 64k', 'write -P 4 1M 8k', 'write -z 1M 4k'], backed)
  return { snap, backed }
}

const ops: Array<[string, string, (img: Image) => Promise<void>]> = [
  ['refcount_bits=4', 'snap', img => img.amend!({ refcount_bits: '4' }, { force: false })],
  ['refcount_bits=64', 'snap', img => img.amend!({ refcount_bits: '64' }, { force: false })],
  ['compat=0.10', 'backed', img => img.amend!({ compat: '0.10' }, { force: false })],
  ['lazy_refcounts=on,size', 'snap', img => img.amend!({ lazy_refcounts: 'on', size: String(16 << 20) }, { force: false })],
  ['bitmap add + writes', 'snap', async img => {
    await img.persistentBitmaps!().add('new', { granularity: 4096, enabled: true })
    await img.write(Buffer.alloc(8192, 9), 7 << 20)
  }],
]

t.test('a crash at any write leaves no corruption', async t => {
  const dir = t.testdir()
  const files = prepare(dir)
  for (const [name, which, op] of ops) {
    await t.test(name, async t => {
      const file = files[which]
      const copy = path.join(dir, `${which}-crash.qcow2`)
      const total = await crashAt(file, copy, Infinity, op)
      t.ok(total > 0, `the operation writes (${total} writes)`)
      for (let n = 0; n < total; n++) {
        await crashAt(file, copy, n, op)
        const c = qemuCheck(copy)
        t.equal(c.corruptions + c.checkErrors, 0, `crash before write ${n + 1} of ${total}: no corruption`, { check: c.raw })
        if (name.startsWith('bitmap')) continue // (the guest write may or may not have happened)
        const same = qemuImg(['compare', '-f', 'qcow2', '-F', 'qcow2', file, copy])
        // a resize may or may not have happened; the common part is intact
        t.ok(same.code === 0 || (name.includes('size') && same.stdout.includes('size')), `guest data intact: ${same.stdout}${same.stderr}`)
      }
    })
  }
})
