// The partition table parsers against tables sfdisk writes (the oracle for
// numbering, offsets and sizes), and against hostile tables: loops, huge
// counts, bad CRCs, entries past the end of the disk, random corruption.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import fc from 'fast-check'
import { scanPartitions, type Partition, type ReadAt } from '../fuse/partitions/index.js'
import { crc32 } from '../fuse/partitions/crc32.js'
import { sh } from './helpers/mount.js'

function readerOf (disk: Buffer): ReadAt {
  return async (offset, length) => {
    const out = Buffer.alloc(length)
    if (offset < disk.length) disk.copy(out, 0, offset, Math.min(offset + length, disk.length))
    return out
  }
}

function sfdiskDisk (dir: string, name: string, script: string, size = 64 << 20): { disk: Buffer, expected: Partition[] } {
  const file = path.join(dir, name)
  fs.writeFileSync(file, Buffer.alloc(0))
  fs.truncateSync(file, size)
  const r = sh('sfdisk', ['-q', file], { input: script })
  if (r.code !== 0) throw new Error(r.stderr)
  const table = JSON.parse(sh('sfdisk', ['-J', file]).stdout).partitiontable
  const expected = (table.partitions as Array<{ node: string, start: number, size: number, type: string, name?: string }>).map(p => ({
    number: Number(/(\d+)$/.exec(p.node)![1]),
    start: p.start * 512,
    length: p.size * 512,
    type: table.label === 'gpt' ? p.type.toLowerCase() : p.type.padStart(2, '0'),
    ...(p.name ? { name: p.name } : {}),
  }))
  return { disk: fs.readFileSync(file), expected }
}

const MBR_SCRIPT = 'label: dos\n,8M,83\n,8M,82\n,,5\n,4M,83\n,4M,7\n,,c\n'
const GPT_SCRIPT = 'label: gpt\nsize=8M, type=L, name=root\nsize=4M, type=S\ntype=U, name="EFI sys"\n'

t.test('MBR with extended and logical partitions, numbered as sfdisk and Linux do', async t => {
  const { disk, expected } = sfdiskDisk(t.testdir(), 'mbr.img', MBR_SCRIPT)
  const found = await scanPartitions(readerOf(disk), disk.length)
  t.same(found, expected)
  t.same(found.map(p => p.number), [1, 2, 3, 5, 6, 7])
})

t.test('GPT partitions with names; the backup table when the primary is damaged', async t => {
  const { disk, expected } = sfdiskDisk(t.testdir(), 'gpt.img', GPT_SCRIPT)
  t.same(await scanPartitions(readerOf(disk), disk.length), expected)
  const damaged = Buffer.from(disk)
  damaged[512 + 30] ^= 0xff // primary header CRC no longer matches
  t.same(await scanPartitions(readerOf(damaged), damaged.length), expected, 'backup header')
  const entriesDamaged = Buffer.from(disk)
  entriesDamaged[1024 + 40] ^= 0x01 // primary entry array CRC no longer matches
  t.same(await scanPartitions(readerOf(entriesDamaged), entriesDamaged.length), expected, 'backup entries')
  const both = Buffer.from(damaged)
  both[disk.length - 512 + 30] ^= 0xff
  t.same(await scanPartitions(readerOf(both), both.length), [], 'no valid GPT: nothing')
})

t.test('no table, or not a plausible MBR: no partitions', async t => {
  t.same(await scanPartitions(readerOf(Buffer.alloc(1 << 20)), 1 << 20), [])
  const notMbr = Buffer.alloc(1 << 20)
  notMbr[510] = 0x55; notMbr[511] = 0xaa
  notMbr[446] = 0x12 // a boot flag that is neither 0 nor 0x80: a boot sector, not a table
  notMbr[446 + 4] = 0x83; notMbr.writeUInt32LE(1, 446 + 8); notMbr.writeUInt32LE(10, 446 + 12)
  t.same(await scanPartitions(readerOf(notMbr), notMbr.length), [])
  t.same(await scanPartitions(readerOf(Buffer.alloc(512)), 512), [], 'a disk of one sector')
})

function mbrEntry (disk: Buffer, sector: number, slot: number, type: number, start: number, sectors: number): void {
  const e = sector * 512 + 446 + slot * 16
  disk[e + 4] = type
  disk.writeUInt32LE(start, e + 8)
  disk.writeUInt32LE(sectors, e + 12)
  disk[sector * 512 + 510] = 0x55
  disk[sector * 512 + 511] = 0xaa
}

t.test('hostile MBR tables', async t => {
  const size = 1 << 20 // 2048 sectors
  const loop = Buffer.alloc(size)
  mbrEntry(loop, 0, 0, 0x05, 100, 1000)
  mbrEntry(loop, 100, 0, 0x83, 1, 10)
  mbrEntry(loop, 100, 1, 0x05, 0, 1000) // the next EBR is itself
  t.same((await scanPartitions(readerOf(loop), size)).map(p => p.number), [1, 5], 'an EBR chain that loops ends')

  const chain = Buffer.alloc(size)
  mbrEntry(chain, 0, 0, 0x0f, 0, 2048)
  for (let s = 0; s < 2000; s++) {
    mbrEntry(chain, s, 0, s === 0 ? 0x0f : 0x83, s === 0 ? 0 : 1, 1)
    mbrEntry(chain, s, 1, 0x05, s + 1, 1)
  }
  const many = await scanPartitions(readerOf(chain), size)
  t.ok(many.length <= 256, `a very long EBR chain is bounded (${many.length})`)

  const past = Buffer.alloc(size)
  mbrEntry(past, 0, 0, 0x83, 2000, 100) // runs past the end: truncated
  mbrEntry(past, 0, 1, 0x83, 5000, 100) // starts past the end: dropped
  mbrEntry(past, 0, 2, 0x83, 0xffffffff, 0xffffffff)
  t.same(await scanPartitions(readerOf(past), size), [{ number: 1, start: 2000 * 512, length: 48 * 512, type: '83' }])

  const outside = Buffer.alloc(size)
  mbrEntry(outside, 0, 0, 0x05, 4000, 10) // extended partition outside the disk: no EBR is read
  t.same(await scanPartitions(readerOf(outside), size), [])
})

function gptDisk (entryCount: number, entrySize: number, tweak?: (header: Buffer) => void): Buffer {
  const disk = Buffer.alloc(4 << 20)
  mbrEntry(disk, 0, 0, 0xee, 1, 8191)
  const h = disk.subarray(512, 1024)
  h.write('EFI PART', 0, 'latin1')
  h.writeUInt32LE(0x10000, 8)
  h.writeUInt32LE(92, 12)
  h.writeBigUInt64LE(1n, 24)
  h.writeBigUInt64LE(8191n, 32)
  h.writeBigUInt64LE(34n, 40)
  h.writeBigUInt64LE(8158n, 48)
  h.writeBigUInt64LE(2n, 72)
  h.writeUInt32LE(entryCount, 80)
  h.writeUInt32LE(entrySize, 84)
  const e = disk.subarray(1024, 1024 + 128)
  e.fill(0xab, 0, 16)
  e.writeBigUInt64LE(100n, 32)
  e.writeBigUInt64LE(199n, 40)
  const bytes = Math.min(entryCount * entrySize, disk.length - 1024)
  h.writeUInt32LE(crc32(disk.subarray(1024, 1024 + bytes)), 88)
  tweak?.(h)
  h.writeUInt32LE(0, 16)
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16)
  return disk
}

t.test('hostile GPT headers', async t => {
  const ok = gptDisk(128, 128)
  t.same(await scanPartitions(readerOf(ok), ok.length), [{ number: 1, start: 100 * 512, length: 100 * 512, type: 'abababab-abab-abab-abab-abababababab' }])
  const cases: Array<[string, Buffer]> = [
    ['an entry array of 4 GiB', gptDisk(0x01000000, 256)],
    ['entry size not a power-of-two multiple of 128', gptDisk(128, 200)],
    ['entry size 0', gptDisk(128, 0)],
    ['usable range past the disk', gptDisk(128, 128, h => h.writeBigUInt64LE(1n << 40n, 48))],
    ['entries past the disk', gptDisk(128, 128, h => h.writeBigUInt64LE(1n << 50n, 72))],
    ['header size over a sector', gptDisk(128, 128, h => h.writeUInt32LE(4096, 12))],
    ['header not where it claims to be', gptDisk(128, 128, h => h.writeBigUInt64LE(7n, 24))],
  ]
  for (const [what, disk] of cases) t.same(await scanPartitions(readerOf(disk), disk.length), [], what)
  const badEntry = gptDisk(128, 128)
  badEntry.writeBigUInt64LE(1n << 40n, 1024 + 40) // last LBA past the disk: the entry is skipped
  const h = badEntry.subarray(512, 1024)
  h.writeUInt32LE(crc32(badEntry.subarray(1024, 1024 + 128 * 128)), 88)
  h.writeUInt32LE(0, 16)
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16)
  t.same(await scanPartitions(readerOf(badEntry), badEntry.length), [])
})

t.test('random corruption of real tables never throws nor escapes the disk', async t => {
  const dir = t.testdir()
  const tables = [sfdiskDisk(dir, 'm.img', 'label: dos\n,1M,83\n,1M,82\n,,5\n,1M,83\n,,7\n', 8 << 20), sfdiskDisk(dir, 'g.img', 'label: gpt\nsize=1M\nsize=2M\n,\n', 8 << 20)]
  const heads = tables.map(({ disk }) => ({ disk, hot: [...Array(34 * 512).keys(), ...Array.from({ length: 512 }, (_, i) => disk.length - 512 + i)] }))
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 1 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 24 }),
    async (which, edits) => {
      const { disk, hot } = heads[which]
      const d = Buffer.from(disk)
      for (const [i, v] of edits) d[hot[i % hot.length]] = v
      const parts = await scanPartitions(readerOf(d), d.length)
      return parts.every(p => p.start >= 0 && p.length > 0 && p.start + p.length <= d.length && Number.isSafeInteger(p.number))
    }), { numRuns: 300 })
  t.pass('no exception, every partition inside the disk')
})
