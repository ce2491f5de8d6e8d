// Child process of the crash test: random writes through the driver layer
// until it is killed. Prints one line per finished operation so the parent
// can kill it at a point of its choosing without timers.
import { openImage } from '../../src/block/open.js'
import { fillBytes } from './write-model.js'

const [file, seedText] = process.argv.slice(2)
let x = Number(seedText) >>> 0
function rnd (n: number): number {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0
  return (x >>> 8) % n
}

const img = await openImage(file, { readOnly: false })
const cs = img.compressedClusterSize!()
const size = img.size
for (let i = 0; i < 100000; i++) {
  const off = rnd(size)
  const len = Math.min(size - off, 1 + rnd(3 * cs))
  const pick = rnd(10)
  if (pick < 5) await img.write(fillBytes(len, i), off)
  else if (pick < 7) await img.writeZeroes(off, len, { unmap: rnd(2) === 0 })
  else if (pick < 8) await img.discard(off, len)
  else if (pick < 9) {
    const c = Math.floor(off / cs)
    await img.writeCompressed!(fillBytes(Math.min(cs, size - c * cs), i, rnd(2) === 0), c * cs)
  } else await img.flush()
  process.stdout.write(`${i}\n`)
}
await img.close()
