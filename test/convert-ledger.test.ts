// ChunkLedger (src/ops/convert/ledger.ts): what convert writes again, one
// chunk at a time, when a raw target's disk fills up. It must hold every
// chunk from the first ticket not finished on, and nothing before it, in
// the order the chunks were handed out, however the tickets finish.
import t from 'tap'
import { ChunkLedger } from '../src/ops/convert/ledger.js'
import type { Chunk } from '../src/ops/convert/planner.js'

const chunk = (sector: number): Chunk => ({ kind: 'data', sector, sectors: 8, plain: true })
const sectors = (chunks: Chunk[]): number[] => chunks.map(c => c.sector)

t.test('tickets finishing out of order', async t => {
  const ledger = new ChunkLedger()
  const a = ledger.add([chunk(0), chunk(8)])
  const b = ledger.add([chunk(16)])
  const c = ledger.add([chunk(24)])
  ledger.finish(b)
  t.same(sectors(ledger.takeUnsettled()), [0, 8, 16, 24], 'a finished ticket after an unfinished one stays')
  const d = ledger.add([chunk(32)])
  const e = ledger.add([chunk(40)])
  ledger.finish(e)
  ledger.finish(d)
  t.same(sectors(ledger.takeUnsettled()), [], 'taking empties the ledger; all of what came after finished')
  // (a, b, c were taken: finishing them now changes nothing)
  ledger.finish(a)
  ledger.finish(c)
  const f = ledger.add([chunk(48)])
  const g = ledger.add([chunk(56)])
  ledger.finish(f)
  t.same(sectors(ledger.takeUnsettled()), [56], 'the finished front is dropped')
  ledger.finish(g)
})

t.test('stays as small as the tickets in flight', async t => {
  const ledger = new ChunkLedger()
  let held = ledger.add([chunk(0)])
  for (let i = 1; i < 10_000; i++) {
    const next = ledger.add([chunk(i * 8)])
    ledger.finish(held)
    held = next
  }
  t.same(sectors(ledger.takeUnsettled()), [(10_000 - 1) * 8], 'only the last ticket is left')
})
