// SIGKILL in the middle of commit and rebase: every image must stay valid
// (qemu-img check finds no corruption; leaked clusters are allowed) and the
// guest view of the image being committed or rebased must not change. The
// kill is triggered by the command's own progress output, at several points.
import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { nodeCommand, qemuImg, qemuImgOk, qemuIoOk, QIMG_BIN } from './helpers/run.js'
import { rawOf } from './helpers/twins.js'

/** When to kill: after that many progress lines, or once the 100% line appears ('end'). */
type Trigger = number | 'end'

/** Run qimg with `args` in `cwd`; SIGKILL it once its stdout shows `when`. Resolves to whether it was killed. */
function killAfter (args: string[], cwd: string, when: Trigger): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(...nodeCommand([QIMG_BIN, ...args]), { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let killed = false
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1')
      const hit = when === 'end' ? out.includes('(100.00/100%)') : out.split('\r').length - 1 >= when
      if (!killed && hit) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.stderr.resume()
    child.on('error', reject)
    child.on('exit', () => resolve(killed))
  })
}

/** No corruption (leaks allowed: exit code 0 or 3). */
function notCorrupt (t: Test, dir: string, file: string, when: string): void {
  const r = qemuImg(['check', '--output=json', file], { cwd: dir })
  const c = JSON.parse(r.stdout || '{}') as Record<string, number>
  t.ok((r.code === 0 || r.code === 3) && !c.corruptions && !c['check-errors'], `${file} is not corrupt ${when}`, { check: r.stdout + r.stderr })
}

/** A fresh copy of `src` for one run. */
function copyOf (src: string, name: string): string {
  const dir = path.join(path.dirname(src), name)
  fs.rmSync(dir, { recursive: true, force: true })
  execFileSync('cp', ['-a', src, dir])
  return dir
}

function commitChain (dir: string, snapshot: boolean): void {
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'A.qcow2', '24M'], { cwd: dir })
  qemuIoOk(['write -P 1 0 24M'], path.join(dir, 'A.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', 'A.qcow2', '-F', 'qcow2', 'B.qcow2'], { cwd: dir })
  const cmds: string[] = []
  for (let i = 0; i < 48; i++) cmds.push(`write -P ${i + 2} ${i * 512}k ${i % 3 === 0 ? 8 : 200}k`, `write -z ${i * 512 + 300}k 64k`)
  qemuIoOk(cmds, path.join(dir, 'B.qcow2'))
  if (snapshot) qemuImgOk(['snapshot', '-c', 's', 'B.qcow2'], { cwd: dir })
}

t.test('commit killed at any point leaves valid images and the same guest view', async t => {
  const root = t.testdir()
  for (const snapshot of [false, true]) {
    const src = path.join(root, `src-${snapshot}`)
    fs.mkdirSync(src)
    commitChain(src, snapshot)
    const view = rawOf(src, 'B.qcow2')
    for (const lines of [2, 8, 30, 'end', 1000] as Trigger[]) {
      const dir = copyOf(src, `run-${snapshot}-${lines}`)
      const when = `(snapshot: ${snapshot}, killed after ${lines} progress lines)`
      const killed = await killAfter(['commit', '-p', 'B.qcow2'], dir, lines)
      if (lines !== 1000) t.ok(killed, `killed ${when}`)
      notCorrupt(t, dir, 'A.qcow2', when)
      notCorrupt(t, dir, 'B.qcow2', when)
      t.ok(rawOf(dir, 'B.qcow2').equals(view), `the top reads as before ${when}`)
    }
  }
})

function rebaseChain (dir: string): void {
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'old.qcow2', '32M'], { cwd: dir })
  qemuIoOk(['write -P 1 0 32M'], path.join(dir, 'old.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', 'new.qcow2', '32M'], { cwd: dir })
  const cmds: string[] = []
  for (let i = 0; i < 64; i++) cmds.push(`write -P ${i + 2} ${i * 512}k 100k`)
  qemuIoOk(cmds, path.join(dir, 'new.qcow2'))
  qemuImgOk(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', 'old.qcow2', '-F', 'qcow2', 'img.qcow2'], { cwd: dir })
  qemuIoOk(['write -P 9 1M 64k', 'write -z 5M 1M'], path.join(dir, 'img.qcow2'))
}

t.test('rebase killed at any point leaves a valid image that reads the same', async t => {
  const src = path.join(t.testdir(), 'src')
  fs.mkdirSync(src)
  rebaseChain(src)
  const view = rawOf(src, 'img.qcow2')
  for (const lines of [2, 5, 9, 14, 'end', 1000] as Trigger[]) {
    const dir = copyOf(src, `run-${lines}`)
    const when = `(killed after ${lines} progress lines)`
    const killed = await killAfter(['rebase', '-p', '-b', 'new.qcow2', '-F', 'qcow2', 'img.qcow2'], dir, lines)
    if (lines !== 1000) t.ok(killed, `killed ${when}`)
    notCorrupt(t, dir, 'img.qcow2', when)
    t.ok(rawOf(dir, 'img.qcow2').equals(view), `the image reads as before ${when}`)
  }
})
