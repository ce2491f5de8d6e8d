// scripts/tap-summary.mjs, the reporter CI reads: it counts leaf
// assertions, and lists each failure (subtest path and diagnostics, without
// where in the test file) just above the "N passed, N failed" line, which
// stays last.
import t from 'tap'
import path from 'node:path'
import { ROOT } from './helpers/run.js'

async function report (tap: string): Promise<string> {
  const { default: TapSummary } = await import(path.join(ROOT, 'scripts/tap-summary.mjs'))
  const r = new TapSummary()
  let out = ''
  r.on('data', (d: Buffer) => { out += d.toString() })
  const done = new Promise(resolve => r.on('end', resolve))
  // in pieces that cut lines in two, as a pipe delivers them
  for (let i = 0; i < tap.length; i += 7) r.write(tap.slice(i, i + 7))
  r.end()
  r.resume()
  await done
  return out.slice(tap.length)
}

const STREAM = `TAP version 14
# Subtest: test/a.test.ts
    # Subtest: outer
        # Subtest: inner
            ok 1 - fine
            not ok 2 - one is two
              ---
              compare: ===
              at:
                fileName: test/a.test.ts
                lineNumber: 3
              stack: |
                Test.<anonymous> (test/a.test.ts:3:34)
              diff: |
                --- expected
                +++ actual
                -2
                +1
              ...
            
            ok 3 - skipped # SKIP no tmpfs
            1..3
        not ok 1 - inner # time=2ms
    not ok 1 - outer # time=3ms
not ok 1 - test/a.test.ts # time=9ms
# Subtest: test/b.test.ts
    1..0
not ok 2 - test/b.test.ts # time=5ms
  ---
  exitCode: 1
  ...
# Subtest: test/c.test.ts
    ok 1 - ok too
    1..1
ok 3 - test/c.test.ts # time=1ms
`

t.test('counts, failures and their diagnostics', async t => {
  const out = await report(STREAM)
  const lines = out.trimEnd().split('\n')
  t.equal(lines[lines.length - 1], '3 passed, 2 failed', 'the summary line is last (a crashed file counts once)')
  t.match(out, /^- test\/a\.test\.ts > outer > inner > one is two\n {4}compare: ===\n {4}diff: \|\n {6}--- expected\n {6}\+\+\+ actual\n {6}-2\n {6}\+1\n/m, 'the failing assertion, its path and diff')
  t.notMatch(out, /fileName|stack:/, 'not where in the test file')
  t.match(out, /^- test\/b\.test\.ts\n {4}exitCode: 1\n/m, 'a file that failed with no assertion of its own')
  t.notMatch(out, /ok too|fine|skipped/, 'passing and skipped assertions are not listed')
})

t.test('all passed: no failure list', async t => {
  const out = await report('TAP version 14\nok 1 - a\nok 2 - b\n1..2\n')
  t.equal(out, '\n2 passed, 0 failed\n')
})
