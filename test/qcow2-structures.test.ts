// Unit tests of the qcow2 on-disk structures: header and extensions, L2
// entries (standard, compressed, extended with subcluster bitmaps), refcount
// entries of every width, the snapshot table and the bitmap directory.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import {
  COMPRESSION_ZSTD, EXT_BACKING_FORMAT, EXT_FEATURE_TABLE, INCOMPAT_COMPRESSION, INCOMPAT_EXTL2, V2_HEADER_LENGTH,
  decodeExtensions, decodeHeader, encodeExtension, encodeHeader, readU64, writeU64, type Qcow2Header,
} from '../src/formats/qcow2/header.js'
import { Geometry, decodeCompressed, encodeCompressed, subclusterStatus, standardHost } from '../src/formats/qcow2/layout.js'
import { getRefcount, setRefcount, maxRefcount, refcountBlockEntries } from '../src/formats/qcow2/refcount.js'
import { decodeSnapshots, encodeSnapshots, readSnapshotTable, type Qcow2Snapshot } from '../src/formats/qcow2/snapshots.js'
import {
  decodeBitmapDirectory, decodeBitmapTableEntry, decodeBitmapsExtension, encodeBitmapDirectory,
  encodeBitmapsExtension, validateBitmapsExtension, bitmapTableSize, flagNames, type BitmapDirEntry,
} from '../src/formats/qcow2/bitmaps.js'
import { decompressCluster } from '../src/formats/qcow2/compress.js'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'

function header (over: Partial<Qcow2Header> = {}): Qcow2Header {
  return {
    version: 3, backingFileOffset: 0, backingFileSize: 0, clusterBits: 16, size: 5 << 20, cryptMethod: 0,
    l1Size: 1, l1TableOffset: 0x30000, refcountTableOffset: 0x10000, refcountTableClusters: 1,
    nbSnapshots: 0, snapshotsOffset: 0, incompatible: 0n, compatible: 0n, autoclear: 0n, refcountOrder: 4,
    headerLength: 112, compressionType: 0, extensions: [], featureNames: [], ...over,
  }
}

t.test('header: encode and decode round trip (v2, v3, zstd, big values)', async t => {
  const cases: Qcow2Header[] = [
    header(),
    header({ version: 2, headerLength: V2_HEADER_LENGTH, refcountOrder: 4 }),
    header({ compressionType: COMPRESSION_ZSTD, incompatible: INCOMPAT_COMPRESSION | INCOMPAT_EXTL2, autoclear: 3n, compatible: 1n }),
    header({ size: 2 ** 52 + 512, l1TableOffset: 2 ** 50, snapshotsOffset: 2 ** 40, nbSnapshots: 65536, l1Size: 0xffffffff, refcountOrder: 6 }),
  ]
  for (const h of cases) {
    const buf = Buffer.alloc(4096)
    encodeHeader(h).copy(buf)
    const back = decodeHeader(buf)
    const { extensions, featureNames, ...fields } = h
    const { extensions: e2, featureNames: f2, ...fields2 } = back
    if (h.version === 2) {
      // v2 headers end at 72 bytes: the v3 fields read as their defaults
      t.same(fields2, { ...fields, incompatible: 0n, compatible: 0n, autoclear: 0n, compressionType: 0 })
    } else {
      t.same(fields2, fields, `v${h.version} header round trip`)
    }
    t.same(e2, []); t.same(f2, [])
  }
})

t.test('header: extensions round trip; names from the feature table', async t => {
  const h = header()
  const names = Buffer.alloc(96)
  names[0] = 0; names[1] = 0; names.write('dirty bit', 2)
  names[48] = 1; names[49] = 0; names.write('x'.repeat(46), 50) // a full-length name has no NUL
  const buf = Buffer.alloc(4096)
  let pos = h.headerLength
  encodeHeader(h).copy(buf)
  for (const ext of [encodeExtension(EXT_BACKING_FORMAT, Buffer.from('qcow2')), encodeExtension(EXT_FEATURE_TABLE, names), encodeExtension(0x12345678, Buffer.from([1, 2, 3]))]) {
    ext.copy(buf, pos)
    pos += ext.length
  }
  const back = decodeHeader(buf)
  decodeExtensions(buf, back, buf.length)
  t.equal(back.backingFormat, 'qcow2')
  t.same(back.featureNames, [{ type: 0, bit: 0, name: 'dirty bit' }, { type: 1, bit: 0, name: 'x'.repeat(46) }])
  t.same(back.extensions.map(e => [e.type, e.data.length]), [[EXT_BACKING_FORMAT, 5], [EXT_FEATURE_TABLE, 96], [0x12345678, 3]])
  t.equal(encodeExtension(1, Buffer.alloc(9)).length, 24, 'data padded to 8 bytes')
  const bad = Buffer.from(buf)
  bad.writeUInt32BE(4096, h.headerLength + 4)
  t.throws(() => decodeExtensions(bad, decodeHeader(bad), bad.length), /Header extension too large/)
})

t.test('header: what qemu-img writes decodes as qemu-img describes it', async t => {
  const dir = t.testdir()
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k,refcount_bits=8,compression_type=zstd', '-b', 'base.raw', '-F', 'raw', '-u', 'img.qcow2', '3M'], { cwd: dir })
  const buf = fs.readFileSync(path.join(dir, 'img.qcow2')).subarray(0, 4096)
  const h = decodeHeader(buf)
  decodeExtensions(buf, h, h.backingFileOffset)
  t.match(h, { version: 3, clusterBits: 12, size: 3 << 20, refcountOrder: 3, headerLength: 112, compressionType: COMPRESSION_ZSTD, backingFormat: 'raw' })
  t.equal(buf.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize).toString(), 'base.raw')
  // without a backing file name after them, qemu also writes the feature name table
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'plain.qcow2', '1M'], { cwd: dir })
  const plain = fs.readFileSync(path.join(dir, 'plain.qcow2')).subarray(0, 65536)
  const p = decodeHeader(plain)
  decodeExtensions(plain, p, plain.length)
  t.ok(p.featureNames.some(f => f.type === 0 && f.bit === 4 && f.name === 'extended L2 entries'))
})

t.test('u64 fields: exact below 2^53, Infinity above', async t => {
  const b = Buffer.alloc(8)
  writeU64(b, 0, 2 ** 53 - 1)
  t.equal(readU64(b, 0), 2 ** 53 - 1)
  b.writeBigUInt64BE(1n << 53n)
  t.equal(readU64(b, 0), Infinity)
})

t.test('standard L2 entries', async t => {
  const g = new Geometry(16, false)
  const v3 = { zeroFlag: true, dataFile: false }
  const v2 = { zeroFlag: false, dataFile: false }
  t.same(subclusterStatus(g, 0, 0, 0, 0, 0, v3), { kind: 'unallocated', count: 1 })
  t.same(subclusterStatus(g, 0x80000000, 0x50000, 0, 0, 0, v3), { kind: 'normal', host: 0x50000, count: 1 })
  t.same(subclusterStatus(g, 0x80000000, 0x50001, 0, 0, 0, v3), { kind: 'zero', host: 0x50000, count: 1 }, 'preallocated zero cluster')
  t.same(subclusterStatus(g, 0, 1, 0, 0, 0, v3), { kind: 'zero', host: undefined, count: 1 }, 'plain zero cluster')
  t.same(subclusterStatus(g, 0x80000000, 0x50001, 0, 0, 0, v2), { kind: 'normal', host: 0x50000, count: 1 }, 'no zero flag in v2')
  t.same(subclusterStatus(g, 0x80000001, 0x50000, 0, 0, 0, v3), { kind: 'normal', host: 2 ** 32 + 0x50000, count: 1 }, 'offsets above 4 GiB')
  t.same(subclusterStatus(g, 0x80000000, 0, 0, 0, 0, v3), { kind: 'unallocated', count: 1 }, 'offset 0 is no cluster in the image file')
  t.same(subclusterStatus(g, 0x80000000, 0, 0, 0, 0, { zeroFlag: true, dataFile: true }), { kind: 'normal', host: 0, count: 1 }, 'offset 0 with COPIED in a data file')
  t.equal(standardHost(0, 0, true), undefined, 'without COPIED offset 0 is unallocated even with a data file')
  t.equal(subclusterStatus(g, 0x40000000, 0, 0, 0, 0, v3).kind, 'compressed')
})

t.test('extended L2 entries: subcluster runs and contradictions', async t => {
  const g = new Geometry(16, true)
  const ctx = { zeroFlag: false, dataFile: false }
  t.equal(g.subclusterSize, 2048)
  t.equal(g.l2Entries, 4096)
  // subclusters 0-3 allocated, 4-5 zero, the rest unallocated
  const alloc = 0b1111
  const zero = 0b110000
  t.same(subclusterStatus(g, 0x80000000, 0x50000, zero, alloc, 0, ctx), { kind: 'normal', host: 0x50000, count: 4 })
  t.same(subclusterStatus(g, 0x80000000, 0x50000, zero, alloc, 2, ctx), { kind: 'normal', host: 0x50000 + 2 * 2048, count: 2 })
  t.same(subclusterStatus(g, 0x80000000, 0x50000, zero, alloc, 4, ctx), { kind: 'zero', host: 0x50000 + 4 * 2048, count: 2 })
  t.same(subclusterStatus(g, 0x80000000, 0x50000, zero, alloc, 6, ctx), { kind: 'unallocated', host: 0x50000 + 6 * 2048, count: 26 })
  t.same(subclusterStatus(g, 0, 0, 0xffffffff, 0, 31, ctx), { kind: 'zero', host: undefined, count: 1 }, 'zero bits without a cluster')
  t.equal(subclusterStatus(g, 0x80000000, 0x50000, 1 << 9, 1 << 9, 0, ctx).kind, 'invalid', 'both bits anywhere invalidate the entry')
  t.equal(subclusterStatus(g, 0, 0, 0, 1, 3, ctx).kind, 'invalid', 'allocation bits without a cluster')
  t.equal(subclusterStatus(g, 0x80000000, 0x50001, 0, 1, 0, ctx).kind, 'normal', 'bit 0 is no zero flag here')
  t.same(subclusterStatus(g, 0x40000000, 0, 0, 0, 5, ctx), { kind: 'compressed', count: 27 })
})

t.test('compressed cluster descriptors: every cluster size', async t => {
  for (let bits = 9; bits <= 21; bits++) {
    const g = new Geometry(bits, false)
    for (const [offset, size] of [[0x12345, 1], [0x50000, 2 ** bits], [2 ** (62 - (bits - 8)) - 513, 700], [511, 2]]) {
      const entry = encodeCompressed(offset, size, g)
      const hi = Number(entry >> 32n)
      const lo = Number(entry & 0xffffffffn)
      const d = decodeCompressed(hi, lo, g)
      t.equal(d.offset, offset, `offset, cluster_bits ${bits}`)
      // the descriptor counts sectors: the size covers at least the data, to the end of its last sector
      t.ok(d.size >= size && (d.offset + d.size) % 512 === 0, `size ${d.size} >= ${size}`)
    }
  }
})

t.test('compressed clusters written by qemu decode and decompress', async t => {
  const dir = t.testdir()
  for (const type of ['zlib', 'zstd']) {
    const name = `${type}.qcow2`
    qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', `compression_type=${type}`, name, '1M'], { cwd: dir })
    qemuIoOk(['write -c -P 0x5a 64k 64k'], name, [], { cwd: dir })
    const file = fs.readFileSync(path.join(dir, name))
    const h = decodeHeader(file)
    const l1 = file.readBigUInt64BE(h.l1TableOffset) & 0x00fffffffffffe00n
    const e = Number(l1) + 8
    const g = new Geometry(h.clusterBits, false)
    const d = decodeCompressed(file.readUInt32BE(e), file.readUInt32BE(e + 4), g)
    const data = await decompressCluster(h.compressionType, file.subarray(d.offset, d.offset + d.size), g.clusterSize)
    t.ok(data.equals(Buffer.alloc(65536, 0x5a)), `${type} cluster`)
  }
})

t.test('refcount entries of every width', async t => {
  for (let order = 0; order <= 6; order++) {
    const bits = 2 ** order
    const block = Buffer.alloc(512)
    const n = refcountBlockEntries(9, order)
    t.equal(n, 4096 / bits)
    const max = maxRefcount(order)
    const value = (i: number) => order >= 6 ? (i * 0x10000000001) % (2 ** 53) : i % (max + 1)
    for (let i = 0; i < n; i++) setRefcount(block, i, order, value(i))
    for (let i = 0; i < n; i++) {
      if (getRefcount(block, i, order) !== value(i)) { t.fail(`order ${order} entry ${i}`); break }
    }
    setRefcount(block, 1, order, max)
    t.equal(getRefcount(block, 1, order), max, `max value ${max}`)
  }
  // narrow entries fill bytes from the least significant bit
  const b = Buffer.alloc(2)
  setRefcount(b, 0, 0, 1)
  setRefcount(b, 3, 0, 1)
  setRefcount(b, 2, 1, 3) // 2-bit entry 2 = bits 4-5 of byte 0
  t.equal(b[0], 0b111001)
  const w = Buffer.alloc(16)
  setRefcount(w, 1, 6, 2 ** 40 + 7)
  t.equal(w.readBigUInt64BE(8), 2n ** 40n + 7n, '64-bit entries are big-endian')
  setRefcount(w, 0, 4, 0x1234)
  t.equal(w.readUInt16BE(0), 0x1234)
})

function snap (over: Partial<Qcow2Snapshot> = {}): Qcow2Snapshot {
  return {
    l1TableOffset: 0x70000, l1Size: 3, id: '1', name: 'first', dateSec: 1700000000, dateNsec: 123456789,
    vmClockNsec: 5_000_000_123, vmStateSize: 0, diskSize: 1 << 20, icount: undefined, extraUnknown: Buffer.alloc(0), ...over,
  }
}

t.test('snapshot table round trip', async t => {
  const list = [snap(), snap({ id: '2', name: 'a longer name with ü', vmStateSize: 5 * 2 ** 32, icount: 42 }), snap({ id: '', name: '', extraUnknown: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]) })]
  const buf = encodeSnapshots(list)
  t.equal(buf.length % 8, 0)
  const { snapshots, tableSize } = decodeSnapshots(buf, list.length)
  t.equal(tableSize, buf.length)
  t.same(snapshots.map(s => ({ ...s, l1TableOffsetExact: undefined })), list.map(s => ({ ...s, l1TableOffsetExact: undefined })))
  // the windowed reader gives the same, zeros past the end reading as empty entries
  const read = async (b: Buffer, off: number) => { b.fill(0); buf.copy(b, 0, off, off + b.length) }
  const more = await readSnapshotTable(read, 0, list.length + 2)
  t.same(more.slice(0, 3).map(s => s.name), list.map(s => s.name))
  t.match(more[3], { id: '', name: '', l1Size: 0, vmStateSize: 0, diskSize: undefined })
  t.throws(() => decodeSnapshots(buf, 4), { message: 'Snapshot table is truncated' })
  // a NUL ends a name, as in qemu's C strings
  const nul = encodeSnapshots([snap({ name: 'ab\0cd' })])
  t.equal(decodeSnapshots(nul, 1).snapshots[0].name, 'ab')
})

t.test('snapshot table limits', async t => {
  const extra = encodeSnapshots([snap({ extraUnknown: Buffer.alloc(1001) })])
  t.throws(() => decodeSnapshots(extra, 1), { message: 'Too much extra metadata in snapshot table entry 0\nYou can force-remove this extra metadata with qemu-img check -r all' })
  const big = Buffer.alloc(48)
  big.writeUInt16BE(65535, 12)
  big.writeUInt16BE(65535, 14)
  const entry = (40 + 65535 * 2 + 7) & ~7
  const read = async (b: Buffer, off: number) => {
    b.fill(0)
    for (let i = Math.ceil(off / entry) * entry; i < off + b.length; i += entry) big.copy(b, i - off, 0, Math.min(40, off + b.length - i))
  }
  await t.rejects(readSnapshotTable(read, 0, 600), { message: 'Snapshot table is too big\nYou can force-remove all 89 overhanging snapshots with qemu-img check -r all' })
})

function bitmap (over: Partial<BitmapDirEntry> = {}): BitmapDirEntry {
  return { tableOffset: 0x60000, tableSize: 1, flags: 2, type: 1, granularityBits: 16, name: 'bm', extraData: Buffer.alloc(0), ...over }
}

t.test('bitmap directory round trip and checks', async t => {
  const list = [bitmap(), bitmap({ name: 'second one', flags: 1, granularityBits: 9 }), bitmap({ name: 'x'.repeat(1023), flags: 0, tableSize: 8192 })]
  const dir = encodeBitmapDirectory(list)
  t.equal(dir.length, 32 + 40 + ((24 + 1023 + 7) & ~7))
  t.same(decodeBitmapDirectory(dir, 3, 65536), list)
  t.throws(() => decodeBitmapDirectory(dir, 2, 65536), { message: 'More bitmaps found than specified in header extension' })
  t.throws(() => decodeBitmapDirectory(dir, 4, 65536), { message: 'Less bitmaps found than specified in header extension' })
  t.throws(() => decodeBitmapDirectory(dir.subarray(0, dir.length - 1), 3, 65536), { message: 'Broken bitmap directory' })
  t.throws(() => decodeBitmapDirectory(encodeBitmapDirectory([bitmap({ extraData: Buffer.alloc(8) })]), 1, 65536), { message: 'Bitmap extra data is not supported' })
  for (const bad of [{ flags: 4 }, { type: 2 }, { granularityBits: 8 }, { granularityBits: 32 }, { tableOffset: 0 }, { tableOffset: 0x1000 }, { tableSize: 0 }, { tableSize: 8193 }, { name: 'y'.repeat(1024) }]) {
    t.throws(() => decodeBitmapDirectory(encodeBitmapDirectory([bitmap(bad)]), 1, 65536), { message: /doesn't satisfy the constraints/ }, JSON.stringify(bad).slice(0, 40))
  }
  t.same(flagNames(3), ['in-use', 'auto'])
  t.equal(bitmapTableSize(1 << 20, 9, 512), 1)
  t.equal(bitmapTableSize(1 << 30, 9, 512), 512)
  t.equal(bitmapTableSize((1 << 30) + 1, 9, 512), 513)
})

t.test('bitmaps extension and table entries', async t => {
  const ext = { nbBitmaps: 3, reserved: 0, directorySize: 96n, directoryOffset: 0xb0000n }
  t.same(decodeBitmapsExtension(encodeBitmapsExtension(ext)), ext)
  t.throws(() => decodeBitmapsExtension(Buffer.alloc(8)), { message: 'bitmaps_ext: Invalid extension length' })
  t.throws(() => validateBitmapsExtension({ ...ext, reserved: 1 }, 65536), { message: 'bitmaps_ext: Reserved field is not zero' })
  t.throws(() => validateBitmapsExtension({ ...ext, nbBitmaps: 0 }, 65536), { message: 'found bitmaps extension with zero bitmaps' })
  t.throws(() => validateBitmapsExtension({ ...ext, nbBitmaps: 65536 }, 65536), { message: 'bitmaps_ext: Image has 65536 bitmaps, exceeding the QEMU supported maximum of 65535' })
  t.throws(() => validateBitmapsExtension({ ...ext, directorySize: 1n << 40n }, 65536), { message: 'bitmaps_ext: bitmap directory size (1099511627776) exceeds the maximum supported size (67107840)' })
  t.throws(() => validateBitmapsExtension({ ...ext, directoryOffset: 0xb0008n }, 65536), { message: 'bitmaps_ext: invalid bitmap directory offset' })
  t.same(decodeBitmapTableEntry(0, 0x70000, 65536), { offset: 0x70000, allOnes: false })
  t.same(decodeBitmapTableEntry(0, 1, 65536), { offset: 0, allOnes: true })
  t.same(decodeBitmapTableEntry(0, 0, 65536), { offset: 0, allOnes: false })
  t.equal(decodeBitmapTableEntry(0, 0x71000, 65536), undefined, 'unaligned')
  t.equal(decodeBitmapTableEntry(0, 0x70001, 65536), undefined, 'bit 0 with an offset')
  t.equal(decodeBitmapTableEntry(0, 8, 65536), undefined, 'reserved bit 3')
  t.equal(decodeBitmapTableEntry(0x01000000, 0, 65536), undefined, 'reserved bit 56')
})
