// The addon's plainRunEntries (qcow2 block status: how far a run of plain
// data clusters goes on in the host file) against a reference written from
// the qcow2 spec, on random L2 tables whose runs break in every way an entry
// can break one.
import t from 'tap'
import { native } from '../src/io/native.js'
import { prng } from './helpers/variants.js'

const CLUSTER = 65536
const COMPRESSED = 2n ** 62n
const COPIED = 2n ** 63n
const OFFSET_MASK = 0x00fffffffffffe00n

/** entries from `first` (at most `max`) that are plain, not reading as zeros, each one cluster after the last */
function reference (table: Buffer, first: number, max: number, next: bigint, zeroFlag: boolean): number {
  let n = 0
  for (; n < max; n++) {
    const e = table.readBigUInt64BE((first + n) * 8)
    if ((e & COMPRESSED) !== 0n || (zeroFlag && (e & 1n) !== 0n) || (e & OFFSET_MASK) !== next) break
    next += BigInt(CLUSTER)
  }
  return n
}

t.test('the native addon has plainRunEntries', async t => {
  t.type(native()?.plainRunEntries, 'function')
})

t.test('plainRunEntries ends runs where the spec says', async t => {
  const run = native()!.plainRunEntries!
  // (not an LCG: its low bits repeat too soon to pick among the breaks)
  const next = prng(11)
  const rand = (n: number): number => Math.floor(next() * n)
  const breaks: Array<(e: bigint) => bigint> = [
    e => e | COMPRESSED,
    e => e | 1n, // reads as zeros (v3); plain data under v2
    e => e + BigInt(CLUSTER), // a gap in the host file
    e => e - BigInt(CLUSTER), // going back
    e => e | 0x100n, // a reserved bit: not part of the offset, the run goes on
    e => e & ~COPIED, // refcount > 1: still plain data
    e => e | 0x0100000000000000n, // bit 56, outside the offset: ignored
    () => 0n,
  ]
  for (let round = 0; round < 300; round++) {
    const entries = 1 + rand(600)
    const table = Buffer.alloc(entries * 8)
    // one host-contiguous run from a random place (some past 2^32 bytes, some near 2^51)
    const base = [0x50000n, 0x123450000n, 0x7ff0000000000n][rand(3)] + BigInt(rand(1000) * CLUSTER)
    for (let i = 0; i < entries; i++) table.writeBigUInt64BE(COPIED | (base + BigInt(i * CLUSTER)), i * 8)
    for (let k = rand(4); k > 0; k--) {
      const i = rand(entries)
      table.writeBigUInt64BE(breaks[rand(breaks.length)](table.readBigUInt64BE(i * 8)), i * 8)
    }
    const first = rand(entries)
    const max = rand(entries - first + 1)
    const next = base + BigInt(first * CLUSTER)
    const zeroFlag = rand(2) === 1
    t.equal(run(table, first * 8, max, Number(next), CLUSTER, zeroFlag ? 1 : 0), reference(table, first, max, next, zeroFlag),
      `round ${round}: ${max} entries from ${first} of ${entries}, zero flag ${zeroFlag}`)
  }
})

t.test('plainRunEntries refuses entries past the table', async t => {
  const run = native()!.plainRunEntries!
  const table = Buffer.alloc(64)
  t.equal(run(table, 0, 9, 0, CLUSTER, 0), -22)
  t.equal(run(table, 8, 8, 0, CLUSTER, 0), -22)
  t.equal(run(table, 72, 0, 0, CLUSTER, 0), -22)
  t.equal(run(table, -8, 1, 0, CLUSTER, 0), -22)
  t.equal(run(table, 56, 1, CLUSTER, CLUSTER, 0), 0, 'the last entry is read, and is not the cluster asked for')
  t.equal(run(table, 64, 0, CLUSTER, CLUSTER, 0), 0, 'no entries at the end')
})
