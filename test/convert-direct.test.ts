// convert's one-job copy (the addon's copyChunk, see ops/convert.ts
// copyDirect): a chunk of plain data going into a raw file is read, scanned
// and written by the addon on the pool. What the job hands back (a zero
// sector for the sparse rules, a read that fell short, a failed write) is
// finished in JavaScript. Each case must give qemu-img's output; the jobs'
// statuses are counted in this process, to know each path was taken.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { qemuImgOk, qemuIoOk } from './helpers/run.js'
import { convertBoth, md5 } from './helpers/convert.js'
import { smallFs } from './helpers/small-fs.js'
import { native, type NativeCalls } from '../src/io/native.js'
import { openImage } from '../src/block/open.js'
import { convertImages } from '../src/ops/convert.js'
import type { Image } from '../src/block/types.js'

const MiB = 1 << 20

/**
 * 16 MiB in 64 KiB clusters: whole chunks of data, chunks with a few zero
 * sectors in them, a hole, zero clusters, and data again up to the end.
 */
function source (dir: string): string {
  const file = path.join(dir, 'src.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', file, '16M'])
  const cmds = ['write -P 1 0 6M']
  // 6-8 MiB: data with a 512-byte zero sector every 4 KiB, then 8 KiB of zeros
  for (let at = 6 * MiB; at < 8 * MiB; at += 4096) cmds.push(`write -P 2 ${at + 512} 3584`)
  cmds.push('write -z 8M 64k', 'write -P 0 9M 1M', 'write -P 3 12M 4M')
  qemuIoOk(cmds, file)
  return file
}

/** copyChunk wrapped to count the statuses it calls back with, while `run` runs. */
async function countStatuses (run: () => Promise<void>): Promise<number[]> {
  const n = native() as NativeCalls
  const real = n.copyChunk!
  const counts = [0, 0, 0, 0]
  n.copyChunk = (srcFd, srcOffset, dstFd, dstOffset, buffer, writeLength, scan, callback) =>
    real(srcFd, srcOffset, dstFd, dstOffset, buffer, writeLength, scan, status => { counts[status]++; callback(status) })
  try {
    await run()
  } finally {
    n.copyChunk = real
  }
  return counts
}

/** convert SOURCE (read as `format`) into a new raw file in this process; its statuses. */
async function convertHere (src: string, format: string, target: string, minSparse = 4096): Promise<number[]> {
  const source = await openImage(src, { format })
  fs.writeFileSync(target, '')
  fs.truncateSync(target, Math.ceil(source.size / 512) * 512)
  let dst: Image | undefined
  try {
    dst = await openImage(target, { format: 'raw', readOnly: false })
    const image = dst
    return await countStatuses(() => convertImages({
      sources: [source],
      target: image,
      minSparse,
      hasZeroInit: true,
      targetHasBacking: false,
      compress: false,
      workers: 8,
      outOfOrder: false,
      salvage: false,
      copyOffload: false,
      rateLimit: 0,
      warn: () => undefined,
    }))
  } finally {
    await dst?.close()
    await source.close()
  }
}

t.test('the native addon has the one-job copy', async t => {
  t.type(native()?.copyChunk, 'function')
})

t.test('whole data chunks and chunks with zero sectors: qemu-img\'s bytes and holes', async t => {
  const dir = t.testdir()
  source(dir)
  for (const sparse of [[], ['-S', '0'], ['-S', '64k'], ['-C']]) {
    await convertBoth(t, dir, ['-O', 'raw', ...sparse, 'src.qcow2'], { name: `-O raw ${sparse.join(' ')}` })
  }
  await convertBoth(t, dir, ['-O', 'raw', '-W', 'src.qcow2'], { name: '-O raw -W' })
  const counts = await convertHere(path.join(dir, 'src.qcow2'), 'qcow2', path.join(dir, 'here.raw'))
  t.ok(counts[0] >= 5, `chunks copied in one job: ${counts}`)
  t.ok(counts[1] >= 1, `chunks handed back for their zero sectors: ${counts}`)
  t.equal(counts[2] + counts[3], 0, `no read or write fell short: ${counts}`)
  qemuImgOk(['convert', '-O', 'raw', 'src.qcow2', 'q.raw'], { cwd: dir })
  t.equal(md5(path.join(dir, 'here.raw')), md5(path.join(dir, 'q.raw')), 'in-process: the same bytes')
  // -S 0 writes zero sectors too: no chunk is handed back
  const all = await convertHere(path.join(dir, 'src.qcow2'), 'qcow2', path.join(dir, 'here0.raw'), 0)
  t.equal(all[1], 0, `-S 0: nothing handed back: ${all}`)
})

t.test('a source file cut short reads as zeros past its end, as with qemu-img', async t => {
  const dir = t.testdir()
  const file = source(dir)
  // the last data clusters are gone from the file; their entries remain
  fs.truncateSync(file, fs.statSync(file).size - 3 * MiB - 4096)
  await convertBoth(t, dir, ['-O', 'raw', 'src.qcow2'], { name: 'cut-short source' })
  const counts = await convertHere(file, 'qcow2', path.join(dir, 'here.raw'))
  t.ok(counts[2] >= 1, `a read fell short and was done again: ${counts}`)
  qemuImgOk(['convert', '-O', 'raw', 'src.qcow2', 'q.raw'], { cwd: dir })
  t.equal(md5(path.join(dir, 'here.raw')), md5(path.join(dir, 'q.raw')), 'in-process: the same bytes')
})

t.test('raw sources of sizes that are not whole sectors, laid end to end', async t => {
  const dir = t.testdir()
  fs.writeFileSync(path.join(dir, 'a.raw'), Buffer.alloc(3 * MiB + 1001, 0x5a))
  fs.writeFileSync(path.join(dir, 'b.raw'), Buffer.alloc(5 * MiB - 7, 0xa5))
  await convertBoth(t, dir, ['-O', 'raw', '-f', 'raw', 'a.raw', 'b.raw'], { name: 'two odd-sized raw sources' })
  const counts = await convertHere(path.join(dir, 'a.raw'), 'raw', path.join(dir, 'here.raw'))
  t.ok(counts[0] >= 1, `whole chunks of a raw source go in one job: ${counts}`)
  qemuImgOk(['convert', '-O', 'raw', '-f', 'raw', 'a.raw', 'q.raw'], { cwd: dir })
  t.equal(md5(path.join(dir, 'here.raw')), md5(path.join(dir, 'q.raw')), 'in-process: the same bytes (the last sector\'s tail as zeros)')
})

t.test('into an existing target (-n): zero runs written or not, as qemu-img does', async t => {
  const dir = t.testdir()
  source(dir)
  const garbage = (target: string): void => { fs.writeFileSync(target, Buffer.alloc(16 * MiB, 0xee)) }
  await convertBoth(t, dir, ['-n', '-O', 'raw', 'src.qcow2'], { name: '-n', prepare: garbage })
  await convertBoth(t, dir, ['-n', '--target-is-zero', '-O', 'raw', 'src.qcow2'], {
    name: '-n --target-is-zero',
    prepare: target => { fs.writeFileSync(target, ''); fs.truncateSync(target, 16 * MiB) },
  })
})

t.test('a target that runs out of space: the same error as qemu-img', async t => {
  // (the first chunk's write falls short: a job's failed write is written
  // again from JavaScript for the error. Where a later chunk's write takes
  // the last space first, see the next test.)
  const dir = t.testdir()
  source(dir)
  const small = smallFs(dir, '1m')
  if ('cannot' in small) return t.skip(small.cannot)
  const args = 'convert -O raw src.qcow2 small/out'
  const q = small.run('qemu-img', args)
  const m = small.run('qimg', args)
  t.match(q.stderr, /No space left on device/, 'qemu-img ran out of space')
  t.equal(m.code, q.code, 'exit code')
  t.equal(m.stderr, q.stderr, 'stderr')
})

t.test('the disk fills up while a later chunk is written first: qemu-img\'s error and file', async t => {
  // 1.5 MiB of compressed clusters (decompressed on the pool: slow), then
  // plain data (the addon's one-job copies: quick). The plain chunks'
  // writes take the 2 MiB disk before the first chunk's; qemu, writing in
  // order, fills it at 2 MiB. The chunks in flight are punched out and
  // written again in order (ChunkLedger), so the error and the bytes left
  // are qemu's.
  const dir = t.testdir()
  const file = path.join(dir, 'race.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', file, '8M'])
  const cmds = Array.from({ length: 24 }, (_, i) => `write -c -P ${i + 1} ${i * 65536} 64k`)
  qemuIoOk([...cmds, 'write -P 200 2M 6M'], file)
  const small = smallFs(dir, '2m')
  if ('cannot' in small) return t.skip(small.cannot)
  const args = 'convert -O raw race.qcow2 small/out'
  const left = 'md5sum small/out; du -B1 small/out'
  const q = small.run('qemu-img', args, left)
  t.match(q.stderr, /at byte 2097152: No space left on device/, 'qemu-img ran out of space at the plain data')
  for (let i = 0; i < 3; i++) {
    const m = small.run('qimg', args, left)
    t.equal(m.code, q.code, `exit code (run ${i + 1})`)
    t.equal(m.stderr, q.stderr, `stderr (run ${i + 1})`)
    t.equal(m.stdout, q.stdout, `the bytes and blocks left on the disk (run ${i + 1})`)
  }
})
