// `rebase`: give an image another backing file. In safe mode the guest view
// does not change: wherever the image itself has nothing and the old backing
// chain reads differently from the new one, the old bytes are written into
// the image first (compared sector by sector, in 2 MiB steps, as qemu-img
// 7.2 does). Unsafe mode (-u) only rewrites the header.
import { BlockError, QemuError, strerror } from '../cli/errors.js'
import { openImage } from '../block/open.js'
import { findFormat } from '../block/registry.js'
import { resolveRelative } from '../block/paths.js'
import type { SecretStore } from '../block/secrets.js'
import type { Image } from '../block/types.js'
import { findInChain } from './chain.js'
import { StatusRuns } from './status-runs.js'

const IO_BUF_SIZE = 2 << 20
const SECTOR = 512

export interface RebaseRequest {
  /** the new backing file name, recorded as given ('' = none) */
  backing: string
  /** -F */
  backingFormat?: string
  unsafe: boolean
  secrets?: SecretStore
  forceShare?: boolean
  /** called once per step that compared data, with the step's share in percent (qemu's local_progress) */
  onStep?: (percent: number) => void
}

/** Rebase `img` (opened read-write; with its backing chain unless unsafe). */
export async function rebaseImage (img: Image, req: RebaseRequest): Promise<void> {
  if (req.backingFormat !== undefined && !findFormat(req.backingFormat)) {
    throw new QemuError(`Invalid format name: '${req.backingFormat}'`)
  }
  if (!req.unsafe) {
    // a new backing file already in the chain is used as it is opened there (qemu
    // then neither opens it again nor checks -F against it)
    const inChain = req.backing === '' ? undefined : findInChain(img, req.backing)
    const fresh = req.backing === '' || inChain ? null : await openNewBacking(img, req)
    try {
      await copyDifferences(img, img.backing, inChain ?? fresh, req.onStep)
    } finally {
      await fresh?.close()
    }
  }
  const fail = (why: string): QemuError => new QemuError(`Could not change the backing file to '${req.backing}': ${why}`)
  if (!img.setBacking) throw fail('Operation not supported')
  if (req.backing !== '' && req.backingFormat === undefined) throw fail('backing format must be specified')
  try {
    await img.setBacking(req.backing === '' ? undefined : req.backing, req.backing === '' ? undefined : req.backingFormat)
  } catch (e) {
    if (e instanceof BlockError) throw fail(e.message)
    throw e
  }
}

/** The new backing file, named relative to the image's directory like any backing file. */
async function openNewBacking (img: Image, req: RebaseRequest): Promise<Image> {
  try {
    return await openImage(resolveRelative(img.filename, req.backing), {
      format: req.backingFormat,
      readOnly: true,
      secrets: req.secrets,
      forceShare: req.forceShare,
    })
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(`Could not open new backing file '${req.backing}': ${e.message}`)
    throw e
  }
}

/**
 * Write into `img` the sectors it does not hold itself where `before` and
 * `after` read differently (as zero writes where `before` has nothing).
 */
async function copyDifferences (img: Image, before: Image | null, after: Image | null, onStep?: (percent: number) => void): Promise<void> {
  const size = img.size
  if (size === 0) return
  const oldSize = before?.size ?? 0
  const newSize = after?.size ?? 0
  const step = 100 / Math.trunc(size / Math.min(size, IO_BUF_SIZE))
  const bufOld = Buffer.alloc(IO_BUF_SIZE)
  const bufNew = Buffer.alloc(IO_BUF_SIZE)
  const status = new StatusRuns()
  for (let offset = 0, n = 0; offset < size; offset += n) {
    n = Math.min(IO_BUF_SIZE, size - offset)
    const st = await status.layer(img, offset, n)
    n = Math.min(n, st.length)
    if (st.kind !== 'unallocated') continue
    // past the end of the old backing file the image reads zeros: they are written as zeros
    const oldIsZero = !before || offset >= oldSize
    if (oldIsZero) {
      bufOld.fill(0, 0, n)
    } else {
      n = Math.min(n, oldSize - offset)
      await before.read(bufOld.subarray(0, n), offset)
    }
    if (!after || offset >= newSize) {
      bufNew.fill(0, 0, n)
    } else {
      n = Math.min(n, newSize - offset)
      await after.read(bufNew.subarray(0, n), offset)
    }
    for (let done = 0; done < n;) {
      const { differ, length } = sameRun(bufOld, bufNew, done, n)
      if (differ) await writeCow(img, oldIsZero ? null : Buffer.from(bufOld.subarray(done, done + length)), offset + done, length)
      done += length
    }
    onStep?.(step)
  }
}

async function writeCow (img: Image, buf: Buffer | null, offset: number, length: number): Promise<void> {
  try {
    if (buf) await img.write(buf, offset)
    else await img.writeZeroes(offset, length, { unmap: false })
  } catch (e) {
    if (e instanceof BlockError) throw new QemuError(`Error while writing to COW image: ${strerror(e.errno)}`)
    throw e
  }
}

/** From `start`: whether the first sector differs, and how many bytes of sectors share that answer. */
function sameRun (a: Buffer, b: Buffer, start: number, end: number): { differ: boolean, length: number } {
  const sector = (p: number): boolean => {
    const q = Math.min(p + SECTOR, end)
    return a.compare(b, p, q, p, q) !== 0
  }
  const differ = sector(start)
  let p = Math.min(start + SECTOR, end)
  while (p < end && sector(p) === differ) p = Math.min(p + SECTOR, end)
  return { differ, length: p - start }
}
