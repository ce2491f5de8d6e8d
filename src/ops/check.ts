// `check`: run an image's consistency check, and after a repair that fixed
// something, check again (qemu-img reports the second result, with the
// counts of what the first pass fixed).
import { BlockError, QemuError } from '../cli/errors.js'
import type { CheckMessage, CheckResult, Image, RepairMode } from '../block/types.js'

export interface CheckOutcome {
  /** stderr lines of the first (possibly repairing) pass */
  firstMessages: CheckMessage[]
  /** what the repair fixed, when it fixed anything (a second pass followed) */
  repaired?: { leaks: number, corruptions: number }
  /** stderr lines of the second pass */
  secondMessages: CheckMessage[]
  /** the result to report; absent when the check failed */
  result?: CheckResult
  /** the check could not complete: qemu-img prints these reports, then "Check failed: <errno>" */
  failure?: { errno: string, reports: string[] }
}

/** qemu-img's exit status for formats without a check */
export const CHECK_NOT_SUPPORTED = 63

interface AbortLike { errno: string, messages?: CheckMessage[], reports?: string[] }

function failureOf (e: unknown): AbortLike {
  if (e instanceof BlockError) return e as BlockError & AbortLike
  throw e
}

export async function checkImage (img: Image, repair?: RepairMode): Promise<CheckOutcome> {
  if (!img.check) throw new QemuError('This image format does not support checks', CHECK_NOT_SUPPORTED)
  const outcome: CheckOutcome = { firstMessages: [], secondMessages: [] }
  let first: CheckResult
  try {
    first = await img.check(repair)
  } catch (e) {
    const f = failureOf(e)
    outcome.firstMessages = f.messages ?? []
    outcome.failure = { errno: f.errno, reports: f.reports ?? [] }
    return outcome
  }
  outcome.firstMessages = first.messages
  if (!repair || (first.leaksFixed === 0 && first.corruptionsFixed === 0)) {
    outcome.result = first
    return outcome
  }
  outcome.repaired = { leaks: first.leaksFixed, corruptions: first.corruptionsFixed }
  try {
    const second = await img.check()
    outcome.secondMessages = second.messages
    outcome.result = { ...second, leaksFixed: first.leaksFixed, corruptionsFixed: first.corruptionsFixed }
  } catch (e) {
    const f = failureOf(e)
    outcome.secondMessages = f.messages ?? []
    outcome.failure = { errno: f.errno, reports: f.reports ?? [] }
  }
  return outcome
}

/** qemu-img check's exit status for a completed check. */
export function checkExitCode (r: CheckResult): number {
  if (r.checkErrors) return 1
  if (r.corruptions) return 2
  if (r.leaks) return 3
  return 0
}
