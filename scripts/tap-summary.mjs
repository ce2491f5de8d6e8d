// tap reporter: passes the raw TAP through unchanged and ends with one line
// "N passed, N failed" counting leaf assertions (CI looks for that line).
// A result line that closes a subtest sits at the same indentation as the
// "# Subtest:" comment that opened it, so it is not counted again, unless
// it failed with no failing assertion inside (e.g. a test file that crashed).
import { Transform } from 'node:stream'

export default class TapSummary extends Transform {
  constructor () {
    super()
    this.rest = ''
    this.open = []
    this.passed = 0
    this.failed = 0
  }

  line (l) {
    const m = /^(\s*)(ok|not ok)\b(.*)$/.exec(l)
    const s = /^(\s*)# Subtest\b/.exec(l)
    if (s) { this.open.push({ indent: s[1].length, failedBefore: this.failed }); return }
    if (!m) return
    const indent = m[1].length
    const top = this.open[this.open.length - 1]
    if (top && top.indent === indent) {
      this.open.pop()
      // a subtest that failed without a failing assertion of its own (a
      // crash, a timeout, a wrong plan) still counts as one failure
      if (m[2] === 'not ok' && this.failed === top.failedBefore) this.failed++
      return
    }
    const directive = /#\s*(todo|skip)\b/i.test(m[3])
    if (m[2] === 'ok' || directive) this.passed++; else this.failed++
  }

  _transform (chunk, _enc, cb) {
    const text = this.rest + chunk.toString()
    const lines = text.split('\n')
    this.rest = lines.pop()
    for (const l of lines) this.line(l)
    cb(null, chunk)
  }

  _flush (cb) {
    if (this.rest) this.line(this.rest)
    cb(null, `\n${this.passed} passed, ${this.failed} failed\n`)
  }
}
