// Options given with --image-opts that no layer consumes are errors in qemu
// ("Block format 'qcow2' does not support the option 'foo'"). The generic
// block-layer options are accepted (and ignored by qimg) for every node; a
// driver lists its own in BlockDriver.runtimeOptions.
import { BlockError } from '../cli/errors.js'
import { qdictOrder } from '../cli/qjson.js'

/** options every block node accepts */
export const GENERIC_OPTIONS = [
  'node-name', 'driver', 'read-only', 'auto-read-only', 'force-share', 'discard', 'detect-zeroes',
  'cache.direct', 'cache.no-flush',
]

/** the 'file' protocol's own options (file.*) */
export const FILE_OPTIONS = ['filename', 'locking', 'aio', 'aio-max-batch', 'pr-manager', 'x-check-cache-dropped', 'drop-cache']

function allowed (name: string, list: readonly string[]): boolean {
  return list.some(p => p === name || (p.endsWith('.*') && name.startsWith(p.slice(0, -1))))
}

/**
 * Throw qemu's message for the first option (in QDict order, as qemu finds
 * it) that neither the generic list nor `own` accepts.
 */
export function checkRuntimeOptions (options: Record<string, string>, own: readonly string[], what: { kind: 'format' | 'protocol', name: string }): void {
  const unknown = qdictOrder(Object.keys(options)).find(k => !allowed(k, GENERIC_OPTIONS) && !allowed(k, own))
  if (unknown === undefined) return
  throw new BlockError(what.kind === 'format'
    ? `Block format '${what.name}' does not support the option '${unknown}'`
    : `Block protocol '${what.name}' doesn't support the option '${unknown}'`, 'EINVAL')
}
