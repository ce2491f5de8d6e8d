// `check` output: the human summary (dump_human_image_check) and the QAPI
// ImageCheck object for --output=json.
import type { CheckResult } from '../../block/types.js'
import type { JsonValue } from '../qjson.js'

/**
 * printf("%0.2f") of a double: the exact binary value rounded to two
 * decimals, ties to even (JS toFixed rounds ties up, so ties are detected
 * on the exact decimal expansion).
 */
export function printfFixed2 (x: number): string {
  const exact = x.toFixed(100).replace(/0+$/, '')
  const dot = exact.indexOf('.')
  const tail = dot < 0 ? '' : exact.slice(dot + 3)
  if (tail === '5') {
    // exactly half-way: keep the even last digit
    const truncated = exact.slice(0, dot + 3).padEnd(dot + 3, '0')
    const last = Number(truncated[truncated.length - 1])
    if (last % 2 === 0) return truncated
  }
  return x.toFixed(2)
}

export function renderCheckHuman (r: CheckResult): string {
  let s = ''
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) {
    s += 'No errors were found on the image.\n'
  } else {
    if (r.corruptions) {
      s += `\n${r.corruptions} errors were found on the image.\n` +
        'Data may be corrupted, or further writes to the image may corrupt it.\n'
    }
    if (r.leaks) {
      s += `\n${r.leaks} leaked clusters were found on the image.\n` +
        'This means waste of disk space, but no harm to data.\n'
    }
    if (r.checkErrors) s += `\n${r.checkErrors} internal errors have occurred during the check.\n`
  }
  const total = r.totalClusters ?? 0
  const allocated = r.allocatedClusters ?? 0
  if (total !== 0 && allocated !== 0) {
    s += `${allocated}/${total} = ${printfFixed2(allocated * 100 / total)}% allocated, ` +
      `${printfFixed2((r.fragmentedClusters ?? 0) * 100 / allocated)}% fragmented, ` +
      `${printfFixed2((r.compressedClusters ?? 0) * 100 / allocated)}% compressed clusters\n`
  }
  if (r.imageEndOffset) s += `Image end offset: ${r.imageEndOffset}\n`
  return s
}

export function renderRepairedHuman (repaired: { leaks: number, corruptions: number }): string {
  return 'The following inconsistencies were found and repaired:\n\n' +
    `    ${repaired.leaks} leaked clusters\n` +
    `    ${repaired.corruptions} corruptions\n\n` +
    'Double checking the fixed image now...\n'
}

/** QAPI ImageCheck in schema order; optional members only where qemu sets them. */
export function checkToQapi (filename: string, format: string, r: CheckResult): { [k: string]: JsonValue | undefined } {
  const nz = (v: number | undefined): number | undefined => v ? v : undefined
  return {
    filename,
    format,
    'check-errors': r.checkErrors,
    'image-end-offset': nz(r.imageEndOffset),
    corruptions: nz(r.corruptions),
    leaks: nz(r.leaks),
    'corruptions-fixed': nz(r.corruptionsFixed),
    'leaks-fixed': nz(r.leaksFixed),
    'total-clusters': nz(r.totalClusters),
    'allocated-clusters': nz(r.allocatedClusters),
    'fragmented-clusters': nz(r.fragmentedClusters),
    'compressed-clusters': nz(r.compressedClusters),
  }
}
