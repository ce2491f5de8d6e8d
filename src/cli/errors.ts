// Typed errors. Messages are qemu-img's wording without the "prog: " prefix,
// which the command layer adds with the name the program was invoked as.

/** An error that ends the command with a one-line message and an exit code. */
export class QemuError extends Error {
  /** text qemu appends verbatim after the message line (error_append_hint), newline included or not */
  hint?: string

  constructor (message: string, readonly exitCode = 1) {
    super(message)
    this.name = 'QemuError'
  }
}

/** Several error lines, each printed with the program name (several error_report calls). */
export class QemuErrorLines extends QemuError {
  constructor (readonly lines: string[], exitCode = 1) {
    super(lines.join('\n'), exitCode)
    this.name = 'QemuErrorLines'
  }
}

/** Bad command line: qemu-img adds "Try 'qemu-img --help' for more information". */
export class UsageError extends QemuError {
  constructor (message: string) {
    super(message, 1)
    this.name = 'UsageError'
  }
}

/**
 * An error from the block layer (opening, reading, writing an image). `errno`
 * names the POSIX error where one applies (EIO, EINVAL, ENOSPC, ...), so
 * callers that print strerror-style suffixes (": Input/output error") can.
 */
export class BlockError extends Error {
  constructor (message: string, readonly errno: string = 'EIO') {
    super(message)
    this.name = 'BlockError'
  }
}

const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
  ERANGE: 'Numerical result out of range',
  ENOMEDIUM: 'No medium found',
  E2BIG: 'Argument list too long',
  EFAULT: 'Bad address',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ENXIO: 'No such device or address',
  ENODEV: 'No such device',
  ETXTBSY: 'Text file busy',
  ESPIPE: 'Illegal seek',
  EDQUOT: 'Disk quota exceeded',
}

/** strerror() text for an errno name, as glibc prints it. */
export function strerror (code: string | undefined): string {
  return (code && STRERROR[code]) || 'Input/output error'
}

/** The errno name carried by a Node or block error, if any. */
export function errnoOf (err: unknown): string | undefined {
  if (err instanceof BlockError) return err.errno
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
