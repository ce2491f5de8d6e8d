// Compressed clusters go through batches: reads and inflates gathered per
// turn of the event loop (CompressedReader), zstd compression on worker
// threads (ZstdPool). Batching must not change what each cluster gets.
import t from 'tap'
import crypto from 'node:crypto'
import type { ByteStore } from '../src/io/byte-store.js'
import { BlockError } from '../src/cli/errors.js'
import { CompressedReader } from '../src/formats/qcow2/compressed-reader.js'
import { ZstdPool } from '../src/formats/qcow2/zstd-pool.js'
import { decompressCluster, decompressClusters } from '../src/formats/qcow2/compress.js'
import { compressCluster } from '../src/formats/qcow2/compress-write.js'
import { COMPRESSION_ZLIB, COMPRESSION_ZSTD } from '../src/formats/qcow2/header.js'
import fs from 'node:fs'
import path from 'node:path'
import { openImage } from '../src/block/open.js'
import { qemuImg, qemuImgOk, qimg } from './helpers/run.js'
import { allocation } from './helpers/convert.js'
import { qemuRaw } from './helpers/write-model.js'

/** A store over `bytes` that records its reads, and fails those touching `badAt`. */
function fakeStore (bytes: Buffer, badAt = -1): ByteStore & { reads: Array<[number, number]> } {
  const reads: Array<[number, number]> = []
  return {
    reads,
    async read (buf: Buffer, offset: number) {
      reads.push([offset, buf.length])
      if (badAt >= offset && badAt < offset + buf.length) throw new BlockError('Input/output error', 'EIO')
      return bytes.copy(buf, 0, offset, offset + buf.length)
    },
  } as unknown as ByteStore & { reads: Array<[number, number]> }
}

/** "Decompress" by returning each span's bytes; a span starting with 0xee fails alone. */
const identity = async (input: Buffer, spans: Array<[number, number]>) =>
  spans.map(([at, len]) => input[at] === 0xee ? new BlockError('Could not decompress cluster', 'EIO') : Buffer.from(input.subarray(at, at + len)))

t.test('clusters asked for in one turn share reads; far ones do not; each gets its own bytes', async t => {
  const bytes = crypto.randomBytes(64 << 20)
  const store = fakeStore(bytes)
  const reader = new CompressedReader(store, identity)
  // ten back to back (with a sector of padding between), two far away
  const wanted: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => [4096 + i * 1536, 1000])
  wanted.push([40 << 20, 700], [41 << 20, 900])
  for (const [at] of wanted) if (bytes[at] === 0xee) bytes[at] = 0
  const got = await Promise.all(wanted.map(([at, len]) => reader.load(at, len)))
  got.forEach((g, i) => t.ok(g.equals(bytes.subarray(wanted[i][0], wanted[i][0] + wanted[i][1])), `cluster ${i}`))
  t.same(store.reads.map(r => r[0]).sort((a, b) => a - b), [4096, 40 << 20, 41 << 20], 'three reads')
})

t.test('a cluster that fails to decompress fails alone; a failed read fails its group', async t => {
  const bytes = Buffer.alloc(1 << 20, 1)
  bytes[8192] = 0xee
  const reader = new CompressedReader(fakeStore(bytes, 512 << 10), identity)
  const results = await Promise.allSettled([0, 4096, 8192, 12288].map(at => reader.load(at, 1000)).concat([reader.load((512 << 10) - 100, 1000)]))
  t.same(results.map(r => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected'])
})

t.test('zlib and zstd clusters decompress the same in a batch as alone, broken ones fail alone', async t => {
  const cs = 65536
  const clusters = Array.from({ length: 9 }, (_, i) => Buffer.from(`cluster ${i} `.repeat(8000)).subarray(0, cs))
  for (const type of [COMPRESSION_ZLIB, COMPRESSION_ZSTD]) {
    const packed = await Promise.all(clusters.map(c => compressCluster(type, c)))
    const input = Buffer.concat(packed.map(p => p!))
    const spans: Array<[number, number]> = []
    let at = 0
    for (const p of packed) { spans.push([at, p!.length]); at += p!.length }
    // break cluster 4: its stream is cut short
    spans[4] = [spans[4][0], 10]
    const results = await decompressClusters(type, input, spans, cs)
    results.forEach((r, i) => {
      if (i === 4) t.ok(r instanceof BlockError, `type ${type}: the broken cluster fails`)
      else t.ok(Buffer.isBuffer(r) && r.equals(clusters[i]), `type ${type}: cluster ${i}`)
    })
    t.ok((await decompressCluster(type, packed[2]!, cs)).equals(clusters[2]), `type ${type}: one cluster alone`)
  }
})

t.test('the zstd pool gives what compressing in place gives, after it starts', async t => {
  const cs = 65536
  let inPlace = 0
  const pool = new ZstdPool(3, input => {
    inPlace++
    return null // marks what was compressed in place: a real frame is never null for this text
  })
  const clusters = Array.from({ length: 100 }, (_, i) => i === 50 ? crypto.randomBytes(cs) : Buffer.from(`${i} zstd pool `.repeat(6000)).subarray(0, cs))
  const out = await Promise.all(clusters.map(c => pool.compress(c)))
  t.equal(inPlace, 32, 'the first 32 clusters are compressed in place')
  for (let i = 32; i < clusters.length; i++) {
    if (i === 50) { t.equal(out[i], null, 'random data: not smaller, stored plainly'); continue }
    t.ok(out[i] && (await decompressCluster(COMPRESSION_ZSTD, out[i]!, cs)).equals(clusters[i]), `cluster ${i} round-trips`)
  }
})

t.test('a zstd worker that fails: what it held, and everything after, is compressed in place', async t => {
  const dir = t.testdir({ 'broken-worker.mjs': 'throw new Error("this worker cannot start")\n' })
  let inPlace = 0
  const pool = new ZstdPool(3, input => { inPlace++; return input.subarray(0, 10) }, `${dir}/broken-worker.mjs`)
  const clusters = Array.from({ length: 80 }, (_, i) => Buffer.alloc(65536, i))
  const out = await Promise.all(clusters.map(c => pool.compress(c)))
  t.equal(inPlace, 80, 'every cluster was compressed, in place')
  t.ok(out.every((o, i) => o !== null && o.equals(clusters[i].subarray(0, 10))))
  // and later requests do not wait for the pool
  t.ok((await pool.compress(clusters[0]))?.equals(clusters[0].subarray(0, 10)))
})

t.test('a run of packed clusters lands exactly as one write per cluster would put it; qemu-img reads it back', async t => {
  const dir = t.testdir()
  const cs = 65536
  // 64 KiB clusters, and 4 KiB ones, 600 of which span two L2 tables (512
  // entries each); the last cluster is short: the image ends inside it
  for (const [clusterSize, count, type] of [[cs, 40, 'zlib'], [4096, 600, 'zstd']] as const) {
    const size = clusterSize * count - 1024
    const data = Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.from(`${type} cluster ${i} `.repeat(clusterSize / 8)).subarray(0, clusterSize)))
    const files = ['one-by-one', 'packed'].map(n => path.join(dir, `${n}-${type}.qcow2`))
    for (const f of files) qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', `cluster_size=${clusterSize},compression_type=${type}`, f, String(size)])
    const [single, packed] = await Promise.all(files.map(f => openImage(f, { readOnly: false })))
    const clusters = Array.from({ length: count }, (_, i) => data.subarray(i * clusterSize, Math.min((i + 1) * clusterSize, size)))
    const frames = await Promise.all(clusters.map(c => packed.compressForWrite!(c)))
    t.ok(frames.every(f => f !== null), `${type}: every cluster compresses`)
    for (const [i, c] of clusters.entries()) await single.writeCompressed!(c, i * clusterSize, frames[i])
    // in three runs, as convert would hand them over
    const cut = [0, 7, Math.floor(count / 2), count]
    for (let k = 0; k + 1 < cut.length; k++) await packed.writePackedClusters!(cut[k] * clusterSize, frames.slice(cut[k], cut[k + 1]) as Buffer[])
    for (const img of [single, packed]) { await img.flush(); await img.close() }
    t.ok(fs.readFileSync(files[0]).equals(fs.readFileSync(files[1])), `${type}: the two files are byte for byte the same`)
    t.equal(qemuImg(['check', files[1]]).code, 0, `${type}: qemu-img check is clean`)
    t.ok(qemuRaw(files[1], dir).equals(data.subarray(0, size)), `${type}: qemu-img reads back the data`)
  }
})

t.test('the zstd pool takes clusters of different sizes in one batch', async t => {
  let inPlace = 0
  const pool = new ZstdPool(3, () => { inPlace++; return null })
  for (let i = 0; i < 32; i++) await pool.compress(Buffer.alloc(512)) // past the in-place start
  const clusters = [4096, 65536, 512, 65536, 2048].map((n, i) => Buffer.from(`mixed ${i} `.repeat(n)).subarray(0, n))
  const out = await Promise.all(clusters.map(c => pool.compress(c)))
  for (const [i, c] of clusters.entries()) {
    t.ok(out[i] && (await decompressCluster(COMPRESSION_ZSTD, out[i]!, c.length)).equals(c), `cluster of ${c.length} bytes`)
  }
  t.equal(inPlace, 32, 'the batch went to the workers')
})

t.test('convert -c with zstd ends, whatever batch sizes the pool gets, and matches qemu-img', async t => {
  // the pool starts after 32 clusters: 33 leaves one worker idle, which must not keep qimg running
  const dir = t.testdir()
  const f = (n: string) => path.join(dir, n)
  for (const clusters of [33, 34, 70]) {
    fs.writeFileSync(f('src.raw'), Buffer.from(`convert ${clusters} `.repeat(clusters * 6000)).subarray(0, clusters * 65536))
    for (const out of ['q.qcow2', 'm.qcow2']) fs.rmSync(f(out), { force: true })
    const args = ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', 'src.raw']
    const q = qemuImg([...args, 'q.qcow2'], { cwd: dir })
    const m = qimg([...args, 'm.qcow2'], { cwd: dir, timeout: 30_000 })
    t.same([m.code, m.stdout, m.stderr], [q.code, q.stdout, q.stderr], `${clusters} clusters: same run, and it ended`)
    t.equal(allocation(f('m.qcow2')), allocation(f('q.qcow2')), `${clusters} clusters: same allocation`)
    t.equal(qemuImg(['compare', f('m.qcow2'), f('src.raw')]).code, 0, `${clusters} clusters: same content`)
    t.equal(qemuImg(['check', f('m.qcow2')]).code, 0, `${clusters} clusters: qemu-img check is clean`)
  }
})
