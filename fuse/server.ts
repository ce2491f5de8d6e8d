// The FUSE operations over a MountTree, for fuse-native. Every handler is
// asynchronous and answers through its callback, so requests from the
// kernel's worker threads are served in parallel. Nothing here may touch the
// mount point itself: the kernel would route it back to this process.
import type { FileNode, MountTree, Node } from './tree.js'
import { errnoFor, negErrno } from './errno.js'

const O_ACCMODE = 3
const O_RDONLY = 0
const W_OK = 2

interface Handle { node: FileNode, writable: boolean }

type Cb = (code: number, ...rest: unknown[]) => void

export interface ServerOptions {
  uid: number
  gid: number
  /** every view is read-only (the mount itself is 'ro') */
  readOnly: boolean
  /** time shown for directories */
  mountTime: Date
  /** an operation failed with an unexpected error (logged by the daemon) */
  onError?: (op: string, path: string, err: unknown) => void
}

export interface FuseOperations {
  /** fuse-native's operation table */
  ops: Record<string, unknown>
  /** shutdown began: requests still in flight get EIO instead of touching closed images */
  stop(): void
}

/** fuse-native's operations over `tree`. */
export function fuseOperations (tree: MountTree, opts: ServerOptions): FuseOperations {
  const handles = new Map<number, Handle>()
  let nextFd = 1
  let closed = false

  const fail = (op: string, path: string, cb: Cb, err: unknown, ...rest: unknown[]): void => {
    const code = errnoFor(err)
    if (code === negErrno('EIO')) opts.onError?.(op, path, err)
    cb(code, ...rest)
  }

  const lookupFile = async (path: string): Promise<FileNode> => {
    const node = await tree.lookup(path)
    if (!node) throw Object.assign(new Error('No such file'), { code: 'ENOENT' })
    if (node.kind !== 'file') throw Object.assign(new Error('Is a directory'), { code: 'EISDIR' })
    return node
  }

  const stat = async (node: Node): Promise<Record<string, unknown>> => {
    const base = { uid: opts.uid, gid: opts.gid, atime: opts.mountTime, ctime: opts.mountTime }
    if (node.kind === 'dir') {
      return { ...base, mode: 0o40000 | (opts.readOnly ? 0o555 : 0o755), size: 4096, nlink: 2, mtime: opts.mountTime }
    }
    const bytes = await tree.allocated(node)
    return {
      ...base,
      mode: 0o100000 | (node.view.readOnly ? 0o444 : 0o644),
      size: node.view.size,
      nlink: 1,
      blksize: node.blockSize,
      blocks: Math.ceil(bytes / 512),
      mtime: node.mtime,
      atime: node.mtime,
      ctime: node.mtime,
    }
  }

  const handleFor = async (path: string, fd: number): Promise<Handle> => {
    const h = handles.get(fd)
    if (h) return h
    return { node: await lookupFile(path), writable: false }
  }

  const notPermitted = (...args: unknown[]): void => { (args[args.length - 1] as Cb)(negErrno('EPERM')) }

  const truncate = (path: string, size: number, cb: Cb): void => {
    lookupFile(path).then(node => {
      if (node.view.readOnly) return cb(negErrno('EROFS'))
      // the size of a disk is fixed (resize the image instead)
      cb(size === node.view.size ? 0 : negErrno('EPERM'))
    }).catch(err => fail('truncate', path, cb, err))
  }

  const ops = {
    getattr (path: string, cb: Cb) {
      tree.lookup(path)
        .then(node => node ? stat(node).then(st => cb(0, st)) : cb(negErrno('ENOENT')))
        .catch(err => fail('getattr', path, cb, err))
    },

    readdir (path: string, cb: Cb) {
      tree.lookup(path).then(async node => {
        if (!node) return cb(negErrno('ENOENT'))
        if (node.kind !== 'dir') return cb(negErrno('ENOTDIR'))
        cb(0, ['.', '..', ...await node.entries()])
      }).catch(err => fail('readdir', path, cb, err))
    },

    access (path: string, mode: number, cb: Cb) {
      tree.lookup(path).then(node => {
        if (!node) return cb(negErrno('ENOENT'))
        if ((mode & W_OK) && (node.kind === 'dir' || node.view.readOnly)) return cb(negErrno('EROFS'))
        cb(0)
      }).catch(err => fail('access', path, cb, err))
    },

    open (path: string, flags: number, cb: Cb) {
      lookupFile(path).then(node => {
        const writable = (flags & O_ACCMODE) !== O_RDONLY
        if (writable && node.view.readOnly) return cb(negErrno('EROFS'))
        const fd = nextFd++
        handles.set(fd, { node, writable })
        cb(0, fd)
      }).catch(err => fail('open', path, cb, err))
    },

    release (_path: string, fd: number, cb: Cb) {
      handles.delete(fd)
      cb(0)
    },

    read (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      handleFor(path, fd).then(async ({ node }) => {
        if (closed) return cb(negErrno('EIO'))
        const n = Math.max(0, Math.min(len, node.view.size - pos))
        if (n > 0) await node.view.read(buf.subarray(0, n), pos)
        cb(n)
      }).catch(err => fail('read', path, cb, err))
    },

    write (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) {
      handleFor(path, fd).then(async ({ node }) => {
        if (closed) return cb(negErrno('EIO'))
        if (node.view.readOnly) return cb(negErrno('EROFS'))
        // a disk does not grow: writing at its end is "No space left on device"
        if (pos >= node.view.size) return cb(len === 0 ? 0 : negErrno('ENOSPC'))
        const n = Math.min(len, node.view.size - pos)
        // the kernel's buffer is only ours until we answer: keep no reference to it
        await node.view.write(Buffer.from(buf.subarray(0, n)), pos)
        tree.changed()
        cb(n)
      }).catch(err => fail('write', path, cb, err))
    },

    flush (_path: string, _fd: number, cb: Cb) { cb(0) },

    fsync (path: string, _datasync: number, fd: number, cb: Cb) {
      handleFor(path, fd).then(({ node }) => node.view.flush()).then(() => cb(0), err => fail('fsync', path, cb, err))
    },

    truncate,

    ftruncate (path: string, _fd: number, size: number, cb: Cb) { truncate(path, size, cb) },

    // mtime is the time of the last write; fuse-native 2.2.6 hands us atime
    // twice, so a requested time cannot be honoured: accept and keep the truth
    utimens (path: string, _atime: number, _mtime: number, cb: Cb) {
      lookupFile(path).then(node => cb(node.view.readOnly ? negErrno('EROFS') : 0))
        .catch(err => fail('utimens', path, cb, err))
    },

    statfs (_path: string, cb: Cb) {
      const bsize = 4096
      // statvfs fields travel as 32-bit integers
      cb(0, { bsize, frsize: bsize, blocks: Math.min(Math.ceil(tree.disk.view.size / bsize), 0xffffffff), bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 })
    },

    // the tree's layout is fixed
    create: notPermitted,
    mknod: notPermitted,
    mkdir: notPermitted,
    rmdir: notPermitted,
    unlink: notPermitted,
    rename: notPermitted,
    link: notPermitted,
    symlink: notPermitted,
    chmod: notPermitted,
    chown: notPermitted,
  }
  return { ops, stop: () => { closed = true } }
}
