// Changing the refcount width of a qcow2 image (amend -o refcount_bits=N).
//
// The new refcount table and blocks are built next to the old ones: every
// refcount is copied at the new width (refused, with qemu's message, when a
// refcount does not fit), the new structures count themselves and the old
// ones, all is written and flushed, and then one header write switches
// order and table together. Only after that are the old table and blocks
// freed, so a crash leaves the old structures in charge (the new ones
// leaked) or the new ones in charge (the old ones leaked).
//
// Progress is reported as qemu does: three walks over the old refcount
// table (check, copy, write), one step per table entry.
import { BlockError } from '../../cli/errors.js'
import { encodeHeader, writeU64 } from './header.js'
import { getRefcount, maxRefcount, refcountBlockEntries, setRefcount } from './refcount.js'
import { Qcow2Writer } from './write.js'
import type { StatusCallback } from './amend-progress.js'
import type { Qcow2Image } from './driver.js'

export async function changeRefcountOrder (img: Qcow2Image, newOrder: number, status: StatusCallback): Promise<void> {
  const old = img.shared.writer!
  await old.flush()
  const h = img.header
  const cs = img.geo.clusterSize
  const refs = old.refs
  const n = refs.entries.length
  const total = 3 * n
  const oldOrder = h.refcountOrder
  const newPer = refcountBlockEntries(h.clusterBits, newOrder)
  const newMax = maxRefcount(newOrder)

  // walk 1: every refcount fits the new width; which new blocks hold something
  const needed = new Set<number>()
  let end = 0
  for (let b = 0; b < n; b++) {
    status(b, total)
    const block = await refs.block(b)
    if (!block) continue
    for (let i = 0; i < refs.perBlock; i++) {
      const v = getRefcount(block, i, oldOrder)
      if (v === 0) continue
      const c = b * refs.perBlock + i
      if (v > newMax) {
        throw new BlockError(`Cannot decrease refcount entry width to ${2 ** newOrder} bits: Cluster at offset 0x${(c * cs).toString(16)} has a refcount of ${v}`, 'EINVAL')
      }
      needed.add(Math.floor(c / newPer))
      end = c + 1
    }
    refs.dropClean()
  }

  // where the new table and blocks go: after everything in use, sized so they describe themselves
  const start = Math.max(end, Math.ceil(await img.store.size() / cs))
  let blocks: number[] = []
  let tableClusters = 1
  for (;;) {
    const all = new Set(needed)
    const regionEnd = start + tableClusters + blocks.length
    for (let i = Math.floor(start / newPer); i <= Math.floor((regionEnd - 1) / newPer); i++) all.add(i)
    const next = [...all].sort((a, b) => a - b)
    const nextTable = Math.max(1, Math.ceil((next[next.length - 1] + 1) * 8 / cs))
    if (next.length === blocks.length && nextTable === tableClusters) break
    blocks = next
    tableClusters = nextTable
  }

  // walk 2: copy every refcount at the new width, plus the new structures' own
  const newBlocks = new Map<number, Buffer>(blocks.map(i => [i, Buffer.alloc(cs)]))
  const setNew = (c: number, v: number): void => setRefcount(newBlocks.get(Math.floor(c / newPer))!, c % newPer, newOrder, v)
  for (let b = 0; b < n; b++) {
    status(n + b, total)
    const block = await refs.block(b)
    if (!block) continue
    for (let i = 0; i < refs.perBlock; i++) {
      const v = getRefcount(block, i, oldOrder)
      if (v !== 0) setNew(b * refs.perBlock + i, v)
    }
    refs.dropClean()
  }
  for (let c = start; c < start + tableClusters + blocks.length; c++) setNew(c, 1)

  // walk 3: write the blocks and the table, then switch the header
  const table = Buffer.alloc(tableClusters * cs)
  for (let b = 0; b < n; b++) status(2 * n + b, total)
  for (const [k, i] of blocks.entries()) {
    const at = (start + tableClusters + k) * cs
    await img.store.write(newBlocks.get(i)!, at)
    writeU64(table, i * 8, at)
  }
  await img.store.write(table, start * cs)
  await img.store.flush()
  const oldTable = { offset: h.refcountTableOffset, clusters: h.refcountTableClusters }
  const oldBlocks = refs.entries.filter(off => off !== 0 && Number.isSafeInteger(off))
  h.refcountOrder = newOrder
  h.refcountTableOffset = start * cs
  h.refcountTableClusters = tableClusters
  // order and table location live in the first 104 bytes: one sector, one write
  await img.store.write(encodeHeader(h).subarray(0, 104), 0)
  await img.store.flush()
  status(total, total)

  // the writer works on the new structures from now on; the old ones are freed
  const w = await Qcow2Writer.open(img)
  img.shared.writer = w
  await w.mutex.run(async () => {
    for (let i = 0; i < oldTable.clusters; i++) w.alloc.decref(oldTable.offset / cs + i)
    for (const off of oldBlocks) w.alloc.decref(off / cs)
    await w.flushMetadata()
  })
}
