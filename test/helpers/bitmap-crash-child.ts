// Child process of the bitmap crash test: opens the image read-write, writes
// (which sets bitmap bits), closes (which stores the bitmaps), again and
// again until it is killed. One line per finished cycle.
import { openImage } from '../../src/block/open.js'

const [file, seedText] = process.argv.slice(2)
let x = Number(seedText) >>> 0
function rnd (n: number): number {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0
  return (x >>> 8) % n
}

for (let i = 0; i < 100000; i++) {
  const img = await openImage(file, { readOnly: false, format: 'qcow2' })
  for (let k = 0; k < 4; k++) {
    const off = rnd(img.size - 65536)
    await img.write(Buffer.alloc(1 + rnd(65536), i & 0xff), off)
  }
  if (rnd(4) === 0) {
    const bitmaps = img.persistentBitmaps!()
    const name = `b${rnd(6)}`
    if (bitmaps.list().some(b => b.name === name)) await bitmaps.remove(name)
    else await bitmaps.add(name, { granularity: 512 << rnd(8), enabled: true })
  }
  await img.close()
  process.stdout.write(`${i}\n`)
}
