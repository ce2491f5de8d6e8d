import t from 'tap'
import path from 'node:path'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { nodeCommand, qemuImgOk, qimg, qemuImg, QIMG_BIN } from './helpers/run.js'
import { native } from '../src/io/native.js'

// Wait until some process holds QEMU's "consistent read" lock byte on `file`.
async function waitForReader (file: string): Promise<boolean> {
  const fd = fs.openSync(file, 'r')
  try {
    for (let i = 0; i < 200; i++) {
      if (native()!.ofdLock(fd, 1, 100, 1, 1) === 1) return true
      await sleep(50)
    }
    return false
  } finally { fs.closeSync(fd) }
}

// Hold an image open with the real qemu-io for a while (read-only or read-write).
function holdWithQemuIo (file: string, writable: boolean, ms: number): Promise<void> {
  const p = spawn('qemu-io', [...(writable ? [] : ['-r']), '-c', `sleep ${ms}`, file], { stdio: 'ignore' })
  return new Promise(resolve => { p.on('exit', () => resolve()) })
}

function sleep (ms: number): Promise<void> { return new Promise(resolve => setTimeout(resolve, ms)) }

t.test('qimg respects the image locks QEMU takes', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'a.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', f, '1M'])
  const held = holdWithQemuIo(f, true, 3000)
  await waitForReader(f)
  const a = qimg(['info', f])
  const b = qemuImg(['info', f])
  t.equal(a.stderr, b.stderr, 'same refusal as qemu-img while a writer holds the image')
  t.equal(a.code, 1)
  t.match(a.stderr, /Failed to get shared "write" lock/)
  t.equal(qimg(['info', '-U', f]).code, 0, '-U ignores the writer')
  await held
  t.equal(qimg(['info', f]).code, 0, 'works once the writer is gone')
})

t.test('QEMU respects the image locks qimg takes', async t => {
  const dir = t.testdir()
  const f = path.join(dir, 'b.qcow2')
  qemuImgOk(['create', '-f', 'qcow2', f, '1M'])
  // `qimg bench` keeps the image open read-only while it runs many requests
  const p = spawn(...nodeCommand([QIMG_BIN, 'bench', '-c', '2000000', '-d', '1', '-s', '512', f]), { stdio: 'ignore' })
  t.ok(await waitForReader(f), 'qimg took its read lock')
  const w = qemuImg(['resize', f, '2M'])
  t.equal(w.code, 1, 'qemu-img cannot resize an image qimg reads')
  t.match(w.stderr, /Failed to get "(write|resize)" lock/)
  const r = qemuImg(['info', f])
  t.equal(r.code, 0, 'but can read it alongside')
  p.kill('SIGKILL')
  await new Promise(resolve => p.on('exit', resolve))
  t.equal(qemuImg(['resize', f, '2M']).code, 0, 'a killed qimg leaves no lock behind')
})
