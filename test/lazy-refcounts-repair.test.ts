import t from 'tap'
import path from 'node:path'
import { qemuImgOk, qemuIo, qimg, qemuImg } from './helpers/run.js'

// An image left dirty by a crash with lazy refcounts is repaired when opened
// for writing, printing what qemu prints, and ends clean.
t.test('dirty lazy-refcounts image is repaired on a read-write open', async t => {
  const dir = t.testdir()
  const mk = (name: string): string => {
    const f = path.join(dir, name)
    qemuImgOk(['create', '-f', 'qcow2', '-o', 'lazy_refcounts=on', f, '1M'])
    qemuIo(['write -P 1 0 128k', 'sigraise 9'], f)
    return f
  }
  const a = mk('a.qcow2')
  const b = mk('b.qcow2')
  t.match(qemuImg(['info', a]).stdout, /cleanly shut down: no/, 'the crash left the dirty bit')
  const ours = qimg(['resize', a, '2M'])
  const theirs = qemuImg(['resize', b, '2M'])
  t.equal(ours.stdout, theirs.stdout)
  t.equal(ours.stderr, theirs.stderr, 'same repair messages')
  t.equal(ours.code, theirs.code)
  const check = qemuImg(['check', a])
  t.equal(check.code, 0, 'clean after the repair')
  t.equal(qemuImg(['compare', a, b]).code, 0, 'same content as qemu after its repair')
})
