// create refuses a file another process uses, and leaves it untouched.
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { qemuImgOk } from './helpers/run.js'
import { sameAsQemu } from './helpers/compare.js'

t.test('an image in use is neither truncated nor removed', async t => {
  const dir = t.testdir()
  const img = path.join(dir, 'busy.qcow2')
  qemuImgOk(['create', '-q', '-f', 'qcow2', img, '1M'])
  const before = fs.readFileSync(img)
  // qemu-io keeps the image open (and locked) until its input closes
  const holder = spawn('qemu-io', [img], { stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise<void>(resolve => {
    holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('qemu-io>')) resolve() })
    holder.stdin.write('\n')
  })
  try {
    for (const fmt of ['qcow2', 'raw']) {
      sameAsQemu(t, ['create', '-f', fmt, 'busy.qcow2', '2M'], { cwd: dir })
      t.ok(fs.readFileSync(img).equals(before), `${fmt}: the image is untouched`)
    }
  } finally {
    holder.stdin.end('quit\n')
    await new Promise(resolve => holder.on('exit', resolve))
  }
})
