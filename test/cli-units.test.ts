// Unit tests of the CLI helpers whose output must be byte-exact: QEMU's
// JSON key order and escapes, size_to_str, printf %g, qemu_strtosz and
// getopt_long's rules. Expected values were taken from the real qemu-img.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { qdictOrder, tdbHash, toQemuJson } from '../src/cli/qjson.js'
import { formatG, parseSize, sizeToStr, strtosz } from '../src/cli/sizes.js'
import { getopt, type OptionSpec } from '../src/cli/getopt.js'
import { hexAlt } from '../src/cli/cfmt.js'

t.test('QDict key order as qemu-img prints it', async t => {
  // insertion order is the QAPI schema order; the printed order below is what qemu-img 7.2 prints
  t.same(qdictOrder(['filename', 'format', 'dirty-flag', 'actual-size', 'virtual-size', 'cluster-size', 'format-specific']),
    ['virtual-size', 'filename', 'cluster-size', 'format', 'actual-size', 'format-specific', 'dirty-flag'])
  t.same(qdictOrder(['id', 'name', 'vm-state-size', 'date-sec', 'date-nsec', 'vm-clock-sec', 'vm-clock-nsec', 'icount']),
    ['icount', 'vm-clock-nsec', 'name', 'date-sec', 'date-nsec', 'vm-clock-sec', 'id', 'vm-state-size'])
  t.same(qdictOrder(['compat', 'lazy-refcounts', 'corrupt', 'refcount-bits', 'bitmaps', 'compression-type', 'extended-l2']),
    ['compat', 'compression-type', 'lazy-refcounts', 'bitmaps', 'refcount-bits', 'corrupt', 'extended-l2'])
  t.same(qdictOrder(['name', 'granularity', 'flags']), ['flags', 'name', 'granularity'])
  t.equal(tdbHash(''), 12345, 'the hash of an empty key is the constant term')
  t.equal(qdictOrder(['a', 'b']).length, 2)
})

t.test('JSON printing: indentation, empty lists, escapes, numbers', async t => {
  // as qemu-img printed a snapshot named 'é€😀"\x'
  t.equal(toQemuJson({ name: 'é€😀"\\x' }), '{\n    "name": "\\u00E9\\u20AC\\uD83D\\uDE00\\"\\\\x"\n}')
  t.equal(toQemuJson({ flags: [] }), '{\n    "flags": [\n    ]\n}', 'empty lists as qemu prints bitmap flags')
  t.equal(toQemuJson({ a: { b: [1, true] } }), '{\n    "a": {\n        "b": [\n            1,\n            true\n        ]\n    }\n}')
  t.equal(toQemuJson(9223372036854775807n), '9223372036854775807')
  t.equal(toQemuJson([]), '[\n]')
  t.equal(toQemuJson({ a: undefined, b: null }), '{\n    "b": null\n}', 'absent optional members are left out')
})

t.test('size_to_str and printf %g (glibc rounds exact ties to even)', async t => {
  const cases: Array<[number, string]> = [
    [0, '0 B'], [1, '1 B'], [999, '999 B'], [1000, '0.977 KiB'], [1023, '0.999 KiB'], [1024, '1 KiB'],
    [197120, '192 KiB'], [198144, '194 KiB'], [12345, '12.1 KiB'], [1 << 20, '1 MiB'], [1024000, '0.977 MiB'],
    [5 * 2 ** 30, '5 GiB'], [2 ** 40, '1 TiB'], [2 ** 50, '1 PiB'], [2 ** 60, '1 EiB'], [2 ** 63, '8 EiB'],
    [123456789, '118 MiB'], [10486272, '10 MiB'],
  ]
  for (const [v, s] of cases) t.equal(sizeToStr(v), s, String(v))
  for (const v of [192.5, 193.5, 0.5, 2.5, 999.5, 999.6, 12.05, 1e-5, 123456789, 1023.5, 0.0001234, 1.375, 5e21, 0.000099995]) {
    t.equal(formatG(v, 3), execFileSync('printf', ['%.3g', String(v)], { encoding: 'utf8' }), `%.3g of ${v}`)
  }
})

t.test('qemu_strtosz', async t => {
  const ok: Array<[string, bigint]> = [
    ['0', 0n], ['5', 5n], ['+5', 5n], [' 0x10', 16n], ['0X1F', 31n], ['010', 10n], ['1.', 1n], ['1.0', 1n], ['0.5k', 512n],
    ['1.5e', 1729382256910270464n], ['7.99E', 9211842821808707328n], ['0.1k', 102n], ['5K', 5120n], ['0b', 0n],
    ['9223372036854775807', 9223372036854775807n], ['18446744073709551615', 18446744073709551615n],
    ['1.9999999999999999999k', 1024n], ['0.99999999999999999999', 0n], ['0.7k', 717n],
  ]
  for (const [s, v] of ok) t.equal(strtosz(s).value, v, JSON.stringify(s))
  for (const s of ['', '-1', '-0', ' -5', 'abc', '5 k', '5k ', '1e3', '1.5', '0.1', '.5k', '0x', '00x5', '5kB', '5KiB', '1.5b', '1..5k', '0x1.8k']) {
    t.throws(() => strtosz(s), { kind: 'invalid' }, JSON.stringify(s))
  }
  for (const s of ['18446744073709551616', '16E', '4611686018427387904k']) t.throws(() => strtosz(s), { kind: 'range' }, s)
  t.equal(strtosz('0x10k').warning, 'Using a multiplier suffix on hex numbers is deprecated: 0x10k')
  t.equal(strtosz('0x10k').value, 16384n)
  t.equal(parseSize('1M'), 1 << 20)
  t.equal(parseSize('64', 'k'), 65536, 'default suffix')
  t.throws(() => parseSize('8E'), { kind: 'range' })
})

t.test('%#x as qemu prints offsets', async t => {
  t.equal(hexAlt(0), '0')
  t.equal(hexAlt(0x40200), '0x40200')
  t.equal(hexAlt(2 ** 40), '0x10000000000')
})

const spec: OptionSpec = {
  short: ':f:hqo:c::U',
  long: { format: { arg: 'required', short: 'f' }, output: { arg: 'required' }, object: { arg: 'required' }, 'backing-chain': { arg: 'none' }, cache: { arg: 'optional', short: 'c' } },
}

t.test('getopt_long rules', async t => {
  t.same(getopt(['-f', 'qcow2', 'a', '--output=json', 'b'], spec), { opts: [{ name: 'f', value: 'qcow2' }, { name: 'output', value: 'json' }], args: ['a', 'b'] }, 'arguments are permuted')
  t.same(getopt(['-fqcow2', '-qU'], spec).opts, [{ name: 'f', value: 'qcow2' }, { name: 'q' }, { name: 'U' }], 'attached and bundled')
  t.same(getopt(['-qfraw', 'x'], spec).opts, [{ name: 'q' }, { name: 'f', value: 'raw' }], 'an argument ends a bundle')
  t.same(getopt(['--outp', 'json', '--ba', '--form=raw'], spec).opts, [{ name: 'output', value: 'json' }, { name: 'backing-chain' }, { name: 'f', value: 'raw' }], 'unique prefixes')
  t.same(getopt(['-c', 'x'], spec), { opts: [{ name: 'c' }], args: ['x'] }, 'optional argument only when attached')
  t.same(getopt(['-cnone', '--cache=x', '--cache', 'y'], spec), { opts: [{ name: 'c', value: 'none' }, { name: 'c', value: 'x' }, { name: 'c' }], args: ['y'] })
  t.same(getopt(['a', '--', '-f', '--output'], spec), { opts: [], args: ['a', '-f', '--output'] }, '-- ends options')
  t.same(getopt(['-', 'x'], spec).args, ['-', 'x'], 'a lone dash is an argument')
  t.same(getopt(['-q', 'cmd', '-f', 'x'], { short: 'q', stopAtNonOption: true }), { opts: [{ name: 'q' }], args: ['cmd', '-f', 'x'] })
  t.throws(() => getopt(['--o', 'x'], spec), { message: "unrecognized option '--o'" }, 'ambiguous prefix')
  t.throws(() => getopt(['-z'], spec), { message: "unrecognized option '-z'" })
  t.throws(() => getopt(['-qz'], spec), { message: "unrecognized option '-qz'" })
  t.throws(() => getopt(['--backing-chain=1'], spec), { message: "unrecognized option '--backing-chain=1'" })
  t.throws(() => getopt(['x', '-f'], spec), { message: "missing argument for option '-f'" })
  t.throws(() => getopt(['--format'], spec), { message: "missing argument for option '--format'" })
})

t.test('QemuOpts elements: names end at = or , (no escapes), values take ,, as a comma', async t => {
  const { parseOptsElements } = await import('../src/cli/qemu-opts.js')
  t.same(parseOptsElements('a,,b'), [{ name: 'a' }, { name: '' }, { name: 'b' }])
  t.same(parseOptsElements('backing_file=a,,b,fmt=raw'), [{ name: 'backing_file', value: 'a,b' }, { name: 'fmt', value: 'raw' }])
  t.same(parseOptsElements('secret,id=x'), [{ name: 'secret' }, { name: 'id', value: 'x' }])
})
