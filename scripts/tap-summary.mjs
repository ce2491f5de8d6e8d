// tap reporter: passes the raw TAP through unchanged and ends with one line
// "N passed, N failed" counting leaf assertions (CI looks for that line).
// A result line that closes a subtest sits at the same indentation as the
// "# Subtest:" comment that opened it, so it is not counted again, unless
// it failed with no failing assertion inside (e.g. a test file that crashed).
// Just above that line it lists every failure by its subtest path with the
// start of its diagnostics: CI keeps only the tail of the log, and a failure
// thousands of lines up would otherwise be invisible there.
import { Transform } from 'node:stream'

const DIAG_LINES = 24
// where in the test file it failed is already in the path; keep room for the diff
const SKIP_KEYS = new Set(['at', 'source', 'stack'])

export default class TapSummary extends Transform {
  constructor () {
    super()
    this.rest = ''
    this.open = []
    this.passed = 0
    this.failed = 0
    this.failures = []
    this.diag = null // the failure whose YAML block is being read
  }

  line (l) {
    if (this.diag && this.readDiag(l)) return
    const m = /^(\s*)(ok|not ok)\b(.*)$/.exec(l)
    const s = /^(\s*)# Subtest:?\s*(.*)$/.exec(l)
    if (s) { this.open.push({ indent: s[1].length, name: s[2], failedBefore: this.failed }); return }
    if (!m) return
    const indent = m[1].length
    const top = this.open[this.open.length - 1]
    if (top && top.indent === indent) {
      this.open.pop()
      // a subtest that failed without a failing assertion of its own (a
      // crash, a timeout, a wrong plan) still counts as one failure
      if (m[2] === 'not ok' && this.failed === top.failedBefore) {
        this.failed++
        this.record(indent, m[3], top.name)
      }
      return
    }
    const directive = /#\s*(todo|skip)\b/i.test(m[3])
    if (m[2] === 'ok' || directive) this.passed++
    else { this.failed++; this.record(indent, m[3]) }
  }

  // remember a failure under the names of the subtests it sits in
  record (indent, rest, closing) {
    const path = this.open.map(o => o.name)
    const title = rest.replace(/^\s*\d*\s*-?\s*/, '').replace(/\s*# time=.*$/, '')
    if (closing !== undefined && closing !== title) path.push(closing)
    const f = { path, title, lines: [] }
    this.failures.push(f)
    this.diag = { f, indent, inBlock: false }
  }

  // the YAML block ("---" ... "...") right after a failure, indented deeper
  readDiag (l) {
    const d = this.diag
    const lead = /^\s*/.exec(l)[0].length
    if (!d.inBlock) {
      if (l.trim() === '---' && lead > d.indent) { d.inBlock = true; return true }
      this.diag = null
      return false
    }
    if (l.trim() === '...' && lead > d.indent) { this.diag = null; return true }
    const key = /^\s*([\w-]+):/.exec(l)
    if (d.keyIndent === undefined && key) d.keyIndent = lead
    if (lead === d.keyIndent) d.skipping = key !== null && SKIP_KEYS.has(key[1])
    if (d.skipping) return true
    if (d.f.lines.length < DIAG_LINES) d.f.lines.push(l.slice(d.indent))
    else if (d.f.lines.length === DIAG_LINES) d.f.lines.push('    ...')
    return true
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
    let out = '\n'
    if (this.failures.length) {
      out += 'Failures:\n'
      for (const f of this.failures) {
        out += `- ${[...f.path, f.title].filter(Boolean).join(' > ')}\n`
        for (const l of f.lines) out += `  ${l}\n`
      }
      out += '\n'
    }
    cb(null, out + `${this.passed} passed, ${this.failed} failed\n`)
  }
}
