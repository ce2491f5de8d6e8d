// convert's zero detection: the sector map (done by the native addon when it
// is built) against a plain per-sector reference, and the runs it gives.
import t from 'tap'
import { sparseRuns, zeroSectorMap, SECTOR } from '../src/ops/convert/zero-scan.js'
import { native } from '../src/io/native.js'
import { prng } from './helpers/variants.js'

function reference (buf: Buffer): number[] {
  const map: number[] = []
  for (let off = 0; off < buf.length; off += SECTOR) map.push(buf.subarray(off, off + SECTOR).every(b => b === 0) ? 1 : 0)
  return map
}

t.test('the native addon has the zero-sector scan', async t => {
  t.type(native()?.zeroSectorMap, 'function')
})

t.test('zeroSectorMap finds exactly the all-zero sectors', async t => {
  const next = prng(7)
  const rand = (n: number): number => Math.floor(next() * n)
  for (let round = 0; round < 50; round++) {
    const sectors = 1 + rand(300)
    const buf = Buffer.alloc(sectors * SECTOR)
    for (let s = 0; s < sectors; s++) {
      switch (rand(5)) {
        case 0: break // zero
        case 1: buf[s * SECTOR + rand(SECTOR)] = 1 + rand(255); break // one byte anywhere
        case 2: buf[s * SECTOR + SECTOR - 1] = 9; break // only the last byte
        case 3: buf[s * SECTOR + 8 * rand(64) + 3] = 1; break // inside one 8-byte word
        default: buf.fill(0x5a, s * SECTOR, (s + 1) * SECTOR)
      }
    }
    // an odd start inside a larger buffer, as convert's chunk views are
    const host = Buffer.alloc(buf.length + 3)
    buf.copy(host, 3)
    const view = host.subarray(3)
    t.same([...zeroSectorMap(view)], reference(buf), `round ${round}`)
  }
})

t.test('sparseRuns: no zero sector is one data run; runs cover the chunk', async t => {
  t.same(sparseRuns(new Uint8Array(16), 0, 8), [{ zero: false, sectors: 16 }])
  t.same(sparseRuns(new Uint8Array(0), 0, 8), [])
  t.same(sparseRuns(new Uint8Array(16).fill(1), 0, 8), [{ zero: true, sectors: 16 }])
  const map = new Uint8Array(64)
  map.fill(1, 16, 40)
  const runs = sparseRuns(map, 0, 8)
  t.equal(runs.reduce((n, r) => n + r.sectors, 0), 64)
  t.same(runs, [{ zero: false, sectors: 16 }, { zero: true, sectors: 24 }, { zero: false, sectors: 24 }])
})
