#!/usr/bin/env node
// A FUSE server that does nothing: one file whose reads are answered at once
// with whatever the buffer holds. bench/mount.js reads it to show the ceiling
// of the FUSE path itself (kernel, libfuse2, fuse-native's hop to the JS
// thread) on this machine. Usage: node bench/fuse-noop.js MOUNTPOINT SIZE
import { createRequire } from 'node:module'

const Fuse = createRequire(import.meta.url)('fuse-native')
const [mountPoint, sizeText] = process.argv.slice(2)
const size = Number(sizeText)
const now = new Date()
const attr = (mode, sz) => ({ mode, size: sz, nlink: 1, uid: 0, gid: 0, mtime: now, atime: now, ctime: now })
const ops = {
  readdir: (_p, cb) => cb(0, ['file']),
  getattr: (p, cb) => p === '/' ? cb(0, attr(0o40755, 4096)) : p === '/file' ? cb(0, attr(0o100444, size)) : cb(Fuse.ENOENT),
  open: (_p, _flags, cb) => cb(0, 1),
  release: (_p, _fd, cb) => cb(0),
  read: (_p, _fd, _buf, len, pos, cb) => cb(Math.max(0, Math.min(len, size - pos))),
}
const fuse = new Fuse(mountPoint, ops, { fsname: 'qimg-bench-noop,big_writes,ro', autoUnmount: true })
fuse.mount(err => {
  if (err) { console.error(err.message); process.exit(1) }
  process.stdout.write('ready\n')
})
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)))
