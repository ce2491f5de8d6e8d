// Every kind of image qemu writes must read back through the driver layer
// exactly as `qemu-img convert -O raw` reads it.
import t from 'tap'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import type { Image } from '../src/block/types.js'
import { Qcow2Image } from '../src/formats/qcow2/driver.js'
import { ROOT, qemuImgOk } from './helpers/run.js'
import { qcow2Variants } from './helpers/variants.js'

async function md5Of (img: Image): Promise<string> {
  const h = crypto.createHash('md5')
  const chunk = 1 << 20
  for (let pos = 0; pos < img.size; pos += chunk) {
    const buf = Buffer.alloc(Math.min(chunk, img.size - pos))
    await img.read(buf, pos)
    h.update(buf)
  }
  return h.digest('hex')
}

function qemuMd5 (file: string, extra: string[] = []): string {
  const out = file + '.qemu.raw'
  qemuImgOk(['convert', ...extra, '-O', 'raw', file, out], { cwd: path.dirname(file) })
  const sum = crypto.createHash('md5').update(fs.readFileSync(out)).digest('hex')
  fs.rmSync(out)
  return sum
}

for (const v of qcow2Variants()) {
  t.test(v.name, async t => {
    const dir = t.testdir()
    const file = path.join(dir, v.build(dir))
    // external data files are named relative to the working directory, as qemu opens them
    process.chdir(dir)
    t.teardown(() => process.chdir(ROOT))
    const img = await openImage(file)
    try {
      t.equal(await md5Of(img), qemuMd5(file), 'guest data equals qemu-img convert -O raw')
      for (const name of v.snapshots ?? []) {
        t.ok(img instanceof Qcow2Image, 'snapshots are a qcow2 feature')
        const view = await (img as Qcow2Image).openSnapshot({ name })
        try {
          t.equal(await md5Of(view), qemuMd5(file, ['-l', `snapshot.name=${name}`]), `snapshot ${name}`)
        } finally {
          await view.close()
        }
      }
    } finally {
      await img.close()
    }
  })
}
