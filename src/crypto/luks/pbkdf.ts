// PBKDF2 (node:crypto) and the calibration of iteration counts for a wanted
// time, as qemu does it: measure how many iterations per second this machine
// runs (CPU time, not wall time, so a busy machine does not shrink the
// count), then scale by iter-time. The master key digest gets 1/8 of the
// time, each key slot the whole of it.
import { pbkdf2, pbkdf2Sync } from 'node:crypto'
import { BlockError } from '../../cli/errors.js'
import { digestBytes, type HashAlg } from '../algorithms.js'

export function pbkdf2Async (password: Buffer, salt: Buffer, iterations: number, keyLen: number, hash: HashAlg): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, keyLen, hash, (e, key) => e ? reject(e) : resolve(key))
  })
}

const rates = new Map<HashAlg, number>()

/** PBKDF2 iterations per second of CPU time for a one-block output (measured once per hash). */
export function pbkdf2Rate (hash: HashAlg): number {
  const known = rates.get(hash)
  if (known !== undefined) return known
  const pw = Buffer.alloc(32, 0x61)
  const salt = Buffer.alloc(32)
  let iterations = 1 << 12
  for (;;) {
    const t = process.cpuUsage()
    pbkdf2Sync(pw, salt, iterations, digestBytes(hash), hash)
    const used = process.cpuUsage(t)
    const micros = used.user + used.system
    // 100 ms is plenty to be accurate to a few percent
    if (micros >= 100_000 || iterations >= 1 << 30) {
      const rate = Math.max(1, Math.floor(iterations * 1e6 / Math.max(micros, 1)))
      rates.set(hash, rate)
      return rate
    }
    iterations *= micros < 10_000 ? 8 : 2
  }
}

const U64_MAX = (1n << 64n) - 1n
const U32_MAX = 0xffffffff
export const MIN_ITERATIONS = 1000

/**
 * Iterations that take `iterTimeMs` for an output of `keyLen` bytes, with
 * qemu's range errors. `iterTimeMs` may be a bigint (QAPI's uint64).
 */
export function iterationsFor (hash: HashAlg, keyLen: number, iterTimeMs: number | bigint): number {
  const blocks = Math.max(1, Math.ceil(keyLen / digestBytes(hash)))
  const rate = BigInt(Math.max(1, Math.floor(pbkdf2Rate(hash) / blocks)))
  const ms = BigInt(iterTimeMs)
  if (ms > 0n && rate > U64_MAX / ms) {
    throw new BlockError(`PBKDF iterations ${rate} too large to scale: Numerical result out of range`, 'ERANGE')
  }
  const iterations = rate * ms / 1000n
  if (iterations > BigInt(U32_MAX)) {
    throw new BlockError(`PBKDF iterations ${iterations} larger than ${U32_MAX}: Numerical result out of range`, 'ERANGE')
  }
  return Math.max(MIN_ITERATIONS, Number(iterations))
}
