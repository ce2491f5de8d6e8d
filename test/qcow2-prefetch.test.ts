// Image.prefetch: the compressed clusters of a range land in the cluster
// cache, so later reads need neither the file nor the decompressor. Proved
// by damaging the compressed bytes on disk after prefetching: reads still
// return the original data, while a fresh open of the damaged file fails.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { openImage } from '../src/block/open.js'

t.test('prefetch fills the cluster cache with a compressed range', async t => {
  const dir = t.testdir()
  const raw = path.join(dir, 'src.raw')
  const img = path.join(dir, 'c.qcow2')
  fs.writeFileSync(raw, Buffer.from('prefetch me '.repeat(100000)).subarray(0, 1 << 20))
  execFileSync('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', raw, img])
  const want = fs.readFileSync(raw)

  const image = await openImage(img, { readOnly: true })
  t.teardown(() => image.close())
  t.ok(image.prefetch, 'qcow2 images prefetch')
  await image.prefetch!(0, image.size)

  // overwrite everything after the metadata (the compressed data sits at the end)
  const st = fs.statSync(img)
  const fd = fs.openSync(img, 'r+')
  const damage = 64 << 10
  fs.writeSync(fd, Buffer.alloc(damage, 0xff), 0, damage, st.size - damage)
  fs.closeSync(fd)

  const got = Buffer.alloc(image.size)
  await image.read(got, 0)
  t.ok(got.equals(want), 'read from the cache after the file was damaged')

  const fresh = await openImage(img, { readOnly: true })
  t.teardown(() => fresh.close())
  await t.rejects(fresh.read(Buffer.alloc(image.size), 0), { errno: 'EIO' }, 'the damaged file no longer reads')
})
