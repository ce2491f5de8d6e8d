// Turning failures into the negative errno values FUSE replies with.
import { constants } from 'node:os'
import { errnoOf } from '../src/cli/errors.js'

const ERRNO = constants.errno as Record<string, number>

export function negErrno (code: string): number {
  return -(ERRNO[code] ?? ERRNO.EIO)
}

/** The errno an exception should reach the caller as (EIO when it names none). */
export function errnoFor (err: unknown): number {
  const code = errnoOf(err)
  return negErrno(code && ERRNO[code] !== undefined ? code : 'EIO')
}
