// Malformed qcow2 images are normal input: `info` and `map` must refuse (or
// accept) each exactly as qemu-img does, with the same message and exit code.
import t, { type Test } from 'tap'
import { Crafted, H, snapshotEntry } from './helpers/craft.js'
import { sameAsQemuFast } from './helpers/fast.js'

type Craft = (c: Crafted) => unknown

interface Case { name: string, craft: Craft, options?: string, io?: string[], size?: string }

const DATA = ['write -P 1 0 64k', 'write -P 2 512k 64k']

/** Build each case as its own image and compare `info` and `map --output=json`. */
async function compare (t: Test, cases: Case[], commands: string[][] = [['info'], ['map', '--output=json']]): Promise<void> {
  const dir = t.testdir()
  let n = 0
  for (const c of cases) {
    const name = `case${n++}.qcow2`
    c.craft(Crafted.create(dir, name, { io: c.io ?? DATA, options: c.options, size: c.size }))
    for (const cmd of commands) await sameAsQemuFast(t, [...cmd, name], dir, `${cmd.join(' ')}: ${c.name}`)
  }
}

// the layout qemu-img gives a fresh 1M image with 64k clusters
const REFTABLE = 0x10000
const L1 = 0x30000
const L2 = 0x40000

t.test('truncated files', t => compare(t, [8, 50, 72, 100, 104, 112, 200, 4096, 65536, 131072, 196608, 262144].map(size => ({
  name: `${size} bytes`, craft: c => c.truncate(size),
}))))

t.test('version, cluster size, header length', t => compare(t, [
  { name: 'version 0', craft: c => c.u32(H.version, 0) },
  { name: 'version 4', craft: c => c.u32(H.version, 4) },
  { name: 'version 2 with v3 fields', craft: c => c.u32(H.version, 2) },
  ...[0, 8, 22, 31, 64, 0xffffffff].map(bits => ({ name: `cluster_bits ${bits}`, craft: (c: Crafted) => c.u32(H.clusterBits, bits) })),
  ...[0, 100, 103, 105, 65528, 65532, 65536, 65544, 0xffffffff].map(len => ({ name: `header_length ${len}`, craft: (c: Crafted) => c.u32(H.headerLength, len) })),
  { name: 'refcount_order 6', craft: c => c.u32(H.refcountOrder, 6) },
  { name: 'refcount_order 7', craft: c => c.u32(H.refcountOrder, 7) },
  { name: 'refcount_order 64', craft: c => c.u32(H.refcountOrder, 64) },
  { name: 'encryption method 3', craft: c => c.u32(H.cryptMethod, 3) },
  { name: 'encryption method 2^32-1', craft: c => c.u32(H.cryptMethod, 0xffffffff) },
]))

t.test('virtual size and L1 table', t => compare(t, [
  { name: 'size 0', craft: c => c.u64(H.size, 0) },
  { name: 'size 1', craft: c => c.u64(H.size, 1) },
  { name: 'size 2^40: L1 too small', craft: c => c.u64(H.size, 1n << 40n) },
  { name: 'size 2^56', craft: c => c.u64(H.size, 1n << 56n) },
  { name: 'size 2^62', craft: c => c.u64(H.size, 1n << 62n) },
  { name: 'size 2^64-1', craft: c => c.u64(H.size, (1n << 64n) - 1n) },
  { name: 'l1_size 0', craft: c => c.u32(H.l1Size, 0) },
  { name: 'l1_size 4M entries', craft: c => c.u32(H.l1Size, (32 << 20) / 8) },
  { name: 'l1_size 4M+1 entries', craft: c => c.u32(H.l1Size, (32 << 20) / 8 + 1) },
  { name: 'l1_size 2^32-1', craft: c => c.u32(H.l1Size, 0xffffffff) },
  { name: 'L1 offset unaligned', craft: c => c.u64(H.l1Offset, L1 + 8) },
  { name: 'L1 offset 0', craft: c => c.u64(H.l1Offset, 0) },
  { name: 'L1 past the end of the file', craft: c => c.u64(H.l1Offset, 1n << 28n) },
  { name: 'L1 at 2^62', craft: c => c.u64(H.l1Offset, 1n << 62n) },
  { name: 'L1 ending past 2^63 - 1 GiB', craft: c => c.u64(H.l1Offset, (1n << 63n) - 65536n) },
  { name: 'L1 ending at 2^63 - 1 GiB', craft: c => c.u64(H.l1Offset, (1n << 63n) - (1n << 30n) - 65536n) },
  { name: 'L1 offset 2^64 - 64k', craft: c => c.u64(H.l1Offset, (1n << 64n) - 65536n) },
]))

t.test('refcount table and snapshot table fields', t => compare(t, [
  { name: 'refcount table unaligned', craft: c => c.u64(H.refcountTableOffset, REFTABLE + 8) },
  { name: 'refcount table past the end', craft: c => c.u64(H.refcountTableOffset, 1n << 30n) },
  { name: 'refcount table at 2^62', craft: c => c.u64(H.refcountTableOffset, 1n << 62n) },
  { name: 'refcount table clusters 0', craft: c => c.u32(H.refcountTableClusters, 0) },
  { name: 'refcount table clusters 128', craft: c => c.u32(H.refcountTableClusters, 128) },
  { name: 'refcount table clusters 129', craft: c => c.u32(H.refcountTableClusters, 129) },
  { name: 'refcount table clusters 2^32-1', craft: c => c.u32(H.refcountTableClusters, 0xffffffff) },
  { name: 'one snapshot at offset 0', craft: c => c.u32(H.nbSnapshots, 1) },
  { name: '1000 snapshots reading refcount clusters', craft: c => c.u32(H.nbSnapshots, 1000).u64(H.snapshotsOffset, REFTABLE) },
  { name: '65536 snapshots', craft: c => c.u32(H.nbSnapshots, 65536).u64(H.snapshotsOffset, REFTABLE) },
  { name: '65537 snapshots', craft: c => c.u32(H.nbSnapshots, 65537).u64(H.snapshotsOffset, REFTABLE) },
  { name: 'snapshot table unaligned', craft: c => c.u32(H.nbSnapshots, 1).u64(H.snapshotsOffset, REFTABLE + 1) },
  { name: 'snapshot table past the end', craft: c => c.u32(H.nbSnapshots, 2).u64(H.snapshotsOffset, 1n << 30n) },
  { name: 'snapshot table at 2^62', craft: c => c.u32(H.nbSnapshots, 1).u64(H.snapshotsOffset, 1n << 62n) },
  { name: 'snapshot table ending past 2^63 - 1 GiB', craft: c => c.u32(H.nbSnapshots, 1).u64(H.snapshotsOffset, (1n << 63n) - 65536n) },
]))

function withSnapshots (entries: Buffer[], count?: number): Craft {
  return c => {
    const offset = c.append(Buffer.concat(entries))
    c.u32(H.nbSnapshots, count ?? entries.length).u64(H.snapshotsOffset, offset)
  }
}

t.test('snapshot table entries', t => compare(t, [
  { name: 'extra data 1024', craft: withSnapshots([snapshotEntry({ extra: Buffer.alloc(1024) })]) },
  { name: 'extra data 1025', craft: withSnapshots([snapshotEntry({ extra: Buffer.alloc(1025) })]) },
  { name: 'extra data too big in the second entry', craft: withSnapshots([snapshotEntry(), snapshotEntry({ id: '2', extra: Buffer.alloc(2000) })]) },
  { name: 'no extra data', craft: withSnapshots([snapshotEntry({ extra: Buffer.alloc(0), vmState: 123456789 })]) },
  { name: 'count larger than the table', craft: withSnapshots([snapshotEntry()], 3) },
  { name: 'empty id and name, long names, icount', craft: withSnapshots([
    snapshotEntry({ id: '', name: '' }),
    snapshotEntry({ id: '12345678901', name: 'x'.repeat(40) }),
    snapshotEntry({ extra: Buffer.from('000000014000000000000000001000000000000000000000002a', 'hex').subarray(0, 24), clockNs: 540061123456789n, dateSec: 1700000000 }),
  ]) },
  { name: 'snapshot L1 tables that are broken (not read by info)', craft: withSnapshots([snapshotEntry({ l1Offset: 0x30001 }), snapshotEntry({ l1Size: 0x10000000 })]) },
  {
    // 512 entries of 128 KiB: past qemu's 64 MiB table limit (a sparse file)
    name: 'snapshot table over 64 MiB',
    craft: c => {
      const entry = snapshotEntry({ id: '', name: '' })
      entry.writeUInt16BE(65535, 12)
      entry.writeUInt16BE(65535, 14)
      const size = (40 + 65535 * 2 + 7) & ~7
      const base = c.append(Buffer.alloc(8))
      for (let i = 0; i < 513; i++) c.bytes(base + i * size, entry.subarray(0, 40))
      c.u32(H.nbSnapshots, 513).u64(H.snapshotsOffset, base)
    },
  },
]))

t.test('backing file name', t => compare(t, [
  { name: 'offset 2^40', craft: c => c.u64(H.backingOffset, 1n << 40n).u32(H.backingSize, 4) },
  { name: 'offset 65535 size 4', craft: c => c.u64(H.backingOffset, 65535).u32(H.backingSize, 4) },
  { name: 'offset 65536 size 4', craft: c => c.u64(H.backingOffset, 65536).u32(H.backingSize, 4) },
  { name: 'size 1024', craft: c => c.u64(H.backingOffset, 512).u32(H.backingSize, 1024).bytes(512, Buffer.from('a'.repeat(1024))) },
  { name: 'size 1023 (missing file)', craft: c => c.u64(H.backingOffset, 512).u32(H.backingSize, 1023).bytes(512, Buffer.from('a'.repeat(1023))) },
  { name: 'size 0', craft: c => c.u64(H.backingOffset, 512).u32(H.backingSize, 0) },
  { name: 'inside the header', craft: c => c.u64(H.backingOffset, 100).u32(H.backingSize, 10) },
  { name: 'size without offset', craft: c => c.u32(H.backingSize, 10) },
]))

t.test('feature bits', t => compare(t, [
  { name: 'incompatible bit 5', craft: c => c.orU64(H.incompatible, 1n << 5n) },
  { name: 'incompatible bit 63', craft: c => c.orU64(H.incompatible, 1n << 63n) },
  { name: 'incompatible bits 5, 6, 40', craft: c => c.orU64(H.incompatible, (1n << 5n) | (1n << 6n) | (1n << 40n)) },
  { name: 'named unknown bits', craft: c => { featureName(c, 0, 0, 6, 'six'); featureName(c, 1, 0, 5, 'five'); c.orU64(H.incompatible, 0xe0n) } },
  { name: 'a 46-character feature name', craft: c => { featureName(c, 0, 0, 5, 'x'.repeat(46)); c.orU64(H.incompatible, 1n << 5n) } },
  { name: 'a name for a compatible bit does not name an incompatible one', craft: c => { featureName(c, 0, 1, 5, 'compat'); c.orU64(H.incompatible, 1n << 5n) } },
  { name: 'unknown bit with a broken extension area', craft: c => c.orU64(H.incompatible, 1n << 5n).u32(116, 0x10000) },
  { name: 'unknown compatible bit', craft: c => c.orU64(H.compatible, 1n << 5n) },
  { name: 'unknown autoclear bit', craft: c => c.orU64(H.autoclear, 1n << 5n) },
  { name: 'bitmaps autoclear bit without extension', craft: c => c.orU64(H.autoclear, 1n) },
  { name: 'raw data file bit without data file', craft: c => c.orU64(H.autoclear, 2n) },
  { name: 'data file bit without a name', craft: c => c.orU64(H.incompatible, 4n) },
  { name: 'dirty bit', craft: c => c.orU64(H.incompatible, 1n) },
  { name: 'corrupt bit', craft: c => c.orU64(H.incompatible, 2n) },
  { name: 'compression bit with zlib', craft: c => c.orU64(H.incompatible, 8n) },
  { name: 'zstd without the compression bit', craft: c => c.u8(H.compressionType, 1) },
  { name: 'compression type 2', craft: c => c.u8(H.compressionType, 2).orU64(H.incompatible, 8n) },
  { name: 'compression type 255 without the bit', craft: c => c.u8(H.compressionType, 255) },
  { name: 'compression type outside a 104-byte header', craft: c => c.u8(H.compressionType, 1).u32(H.headerLength, 104) },
  { name: 'extended L2 with 4k clusters', options: 'cluster_size=4k', craft: c => c.orU64(H.incompatible, 16n) },
  { name: 'extended L2 with 8k clusters', options: 'cluster_size=8k', craft: c => c.orU64(H.incompatible, 16n) },
  { name: 'extended L2 with 16k clusters', options: 'cluster_size=16k', craft: c => c.orU64(H.incompatible, 16n) },
  { name: 'extended L2 bit on a standard image', craft: c => c.orU64(H.incompatible, 16n) },
]))

function featureName (c: Crafted, index: number, type: number, bit: number, name: string): void {
  const pos = 120 + 48 * index
  c.u8(pos, type).u8(pos + 1, bit).bytes(pos + 2, Buffer.concat([Buffer.from(name), Buffer.alloc(46)]).subarray(0, 46))
}

/** Turn the feature table extension (the first one) into another extension. */
function extension (type: number, length: number): Craft {
  return c => c.u32(112, type).u32(116, length)
}

t.test('header extensions', t => compare(t, [
  { name: 'length past the cluster', craft: c => c.u32(116, 0x10000) },
  { name: 'length reaching the cluster end exactly', craft: c => c.u32(116, 65536 - 120) },
  { name: 'length one past the cluster end', craft: c => c.u32(116, 65536 - 119) },
  { name: 'length 47: the next header is garbage', craft: c => c.u32(116, 47) },
  { name: 'unknown extension type', craft: c => c.u32(112, 0x12345678) },
  { name: 'backing format of 15 bytes', craft: extension(0xe2792aca, 15) },
  { name: 'backing format of 16 bytes', craft: extension(0xe2792aca, 16) },
  { name: 'backing format of 1024 bytes', craft: extension(0xe2792aca, 1024) },
  { name: 'data file name without the data file bit', craft: extension(0x44415441, 20) },
  { name: 'crypto header without LUKS', craft: extension(0x0537be77, 16) },
  { name: 'crypto header of 8 bytes without LUKS', craft: extension(0x0537be77, 8) },
  { name: 'bitmaps extension of 8 bytes', craft: extension(0x23852875, 8) },
  { name: 'bitmaps extension without the autoclear bit', craft: extension(0x23852875, 24) },
  { name: 'bitmaps extension with garbage', craft: c => { extension(0x23852875, 24)(c); c.orU64(H.autoclear, 1n) } },
  { name: 'extensions ended by the backing file name', craft: c => c.u64(H.backingOffset, 200).u32(H.backingSize, 4).bytes(200, Buffer.from('base')) },
]))

t.test('L2 tables and clusters (map reads them)', t => compare(t, [
  { name: 'L2 table unaligned', craft: c => c.u64(L1, (1n << 63n) | BigInt(L2 + 512)) },
  { name: 'L2 table past the end', craft: c => c.u64(L1, (1n << 63n) | (1n << 24n)) },
  { name: 'L2 table at 2^55', craft: c => c.u64(L1, (1n << 63n) | (1n << 55n)) },
  { name: 'L1 entry with reserved bits', craft: c => c.orU64(L1, 1n << 60n) },
  { name: 'data cluster unaligned', craft: c => c.u64(L2, (1n << 63n) | 0x50200n) },
  { name: 'data cluster unaligned at index 8', craft: c => c.u64(L2 + 64, (1n << 63n) | 0x50200n) },
  { name: 'data cluster past the end', craft: c => c.u64(L2, (1n << 63n) | (1n << 28n)) },
  { name: 'offset 0 with the copied flag', craft: c => c.u64(L2, 1n << 63n) },
  { name: 'zero flag on offset 0', craft: c => c.u64(L2, (1n << 63n) | 1n) },
  { name: 'zero flag on an unaligned cluster', craft: c => c.u64(L2, (1n << 63n) | 0x50201n) },
  { name: 'reserved bits in an L2 entry', craft: c => c.orU64(L2, 2n | (1n << 56n)) },
  { name: 'compressed cluster past the end', craft: c => c.u64(L2, (1n << 62n) | (1n << 24n)) },
  { name: 'extended L2: allocated and zero', options: 'extended_l2=on', io: ['write -P 1 0 4k'], craft: c => c.u64(L2 + 8, (1n << 37n) | 3n) },
  { name: 'extended L2: allocation bits without a cluster', options: 'extended_l2=on', io: ['write -P 1 0 4k'], craft: c => c.u64(L2, 0).u64(L2 + 8, 3) },
  { name: 'extended L2: zero bits without a cluster', options: 'extended_l2=on', io: ['write -P 1 0 4k'], craft: c => c.u64(L2, 0).u64(L2 + 8, 3n << 32n) },
  { name: 'extended L2: standard zero flag is ignored', options: 'extended_l2=on', io: ['write -P 1 0 4k'], craft: c => c.orU64(L2, 1n) },
], [['map', '--output=json'], ['map']]))

// map's answers run on across L2 tables (they merge anyway): a broken table
// or entry further on must end the entry before it, then fail, as in qemu-img
const TWO_TABLES = ['write -P 1 0 64k', 'write -P 2 1G 64k']
const L2B = 0x60000 // the second table (guest offset 1G), data at 0x70000
t.test('a broken second L2 table (map walks across tables)', t => compare(t, [
  { name: 'second L2 table unaligned', craft: c => c.u64(L1 + 16, (1n << 63n) | BigInt(L2B + 512)) },
  { name: 'unallocated L1 entry pointing at an unaligned table', craft: c => c.u64(L1 + 8, (1n << 63n) | BigInt(L2 + 512)) },
  { name: 'second L1 entry with reserved bits', craft: c => c.orU64(L1 + 16, 1n << 60n) },
  { name: 'data cluster unaligned in the second table', craft: c => c.u64(L2B, (1n << 63n) | 0x70200n) },
  { name: 'second table past the end', craft: c => c.u64(L1 + 16, (1n << 63n) | (1n << 30n)) },
].map(c => ({ ...c, io: TWO_TABLES, size: '2G' })), [['map', '--output=json'], ['map']]))

/** An image with three bitmaps (qemu-img bitmap), then patched by `craft`. */
function bitmapCase (name: string, craft: (c: Crafted, dir: number) => unknown): Case {
  return {
    name,
    craft: c => {
      const ext = c.extensions().find(e => e.type === 0x23852875)!
      const dirOffset = Number(c.getU64(ext.pos + 8 + 16))
      craft(c, dirOffset)
    },
  }
}

t.test('bitmaps', async t => {
  const dir = t.testdir()
  const { qemuImgOk } = await import('./helpers/run.js')
  const cases = [
    bitmapCase('unchanged', () => undefined),
    bitmapCase('autoclear bit cleared', c => c.u64(H.autoclear, 0)),
    bitmapCase('nb_bitmaps 0', c => c.u32(bmExt(c), 0)),
    bitmapCase('nb_bitmaps 2', c => c.u32(bmExt(c), 2)),
    bitmapCase('nb_bitmaps 4', c => c.u32(bmExt(c), 4)),
    bitmapCase('nb_bitmaps 65536', c => c.u32(bmExt(c), 65536)),
    bitmapCase('reserved field', c => c.u32(bmExt(c) + 4, 1)),
    bitmapCase('directory size 0', c => c.u64(bmExt(c) + 8, 0)),
    bitmapCase('directory size 95', c => c.u64(bmExt(c) + 8, 95)),
    bitmapCase('directory size 128', c => c.u64(bmExt(c) + 8, 128)),
    bitmapCase('directory size 2^40', c => c.u64(bmExt(c) + 8, 1n << 40n)),
    bitmapCase('directory offset unaligned', (c, d) => c.u64(bmExt(c) + 16, d + 8)),
    bitmapCase('directory past the end', c => c.u64(bmExt(c) + 16, 1n << 30n)),
    bitmapCase('directory at offset 0', c => c.u64(bmExt(c) + 16, 0)),
    bitmapCase('in use and auto', (c, d) => c.u32(d + 12, 3)),
    bitmapCase('extra data compatible flag', (c, d) => c.u32(d + 12, 6)),
    bitmapCase('reserved flag', (c, d) => c.u32(d + 12, 1 << 31)),
    bitmapCase('type 2', (c, d) => c.u8(d + 16, 2)),
    bitmapCase('granularity bits 8', (c, d) => c.u8(d + 17, 8)),
    bitmapCase('granularity bits 9', (c, d) => c.u8(d + 17, 9)),
    bitmapCase('granularity bits 31', (c, d) => c.u8(d + 17, 31)),
    bitmapCase('granularity bits 32', (c, d) => c.u8(d + 17, 32)),
    bitmapCase('name size 0', (c, d) => c.u16(d + 18, 0)),
    bitmapCase('name size 2', (c, d) => c.u16(d + 18, 2)),
    bitmapCase('name size past the directory', (c, d) => c.u16(d + 18, 1024)),
    bitmapCase('extra data', (c, d) => c.u32(d + 20, 8)),
    bitmapCase('table offset unaligned', (c, d) => c.u64(d, 0x1234)),
    bitmapCase('table offset 0', (c, d) => c.u64(d, 0)),
    bitmapCase('table size 0', (c, d) => c.u32(d + 8, 0)),
    bitmapCase('table size 2', (c, d) => c.u32(d + 8, 2)),
    bitmapCase('table size 8192', (c, d) => c.u32(d + 8, 8192)),
    bitmapCase('table size 8193', (c, d) => c.u32(d + 8, 8193)),
    bitmapCase('table size 2, in use', (c, d) => c.u32(d + 8, 2).u32(d + 12, 1)),
    bitmapCase('table past the end', (c, d) => c.u64(d, 1n << 30n)),
    bitmapCase('table entry unaligned', (c, d) => c.u64(Number(c.getU64(d)), 0x1234)),
    bitmapCase('table entry with a reserved bit', (c, d) => c.u64(Number(c.getU64(d)), 8)),
    bitmapCase('table entry all ones', (c, d) => c.u64(Number(c.getU64(d)), 1)),
    bitmapCase('table entry unaligned, in use', (c, d) => c.u64(Number(c.getU64(d)), 0x1234).u32(d + 12, 1)),
    bitmapCase('duplicate names', (c, d) => c.u8(d + 32 + 24 + 2, '1'.charCodeAt(0))),
    bitmapCase('nonzero padding', (c, d) => c.u8(d + 24 + 3, 1)),
  ]
  let n = 0
  for (const c of cases) {
    const name = `bm${n++}.qcow2`
    const img = Crafted.create(dir, name)
    qemuImgOk(['bitmap', '--add', name, 'bm1'], { cwd: dir })
    qemuImgOk(['bitmap', '--add', '-g', '128k', name, 'bm2'], { cwd: dir })
    qemuImgOk(['bitmap', '--add', '--disable', name, 'bm3'], { cwd: dir })
    c.craft(img)
    for (const cmd of [['info'], ['info', '--output=json']]) await sameAsQemuFast(t, [...cmd, name], dir, `${cmd.join(' ')}: ${c.name}`)
  }
})

/** Position of the bitmaps extension's data. */
function bmExt (c: Crafted): number {
  return c.extensions().find(e => e.type === 0x23852875)!.pos + 8
}
