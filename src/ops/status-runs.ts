// Block status in the pieces qemu reports it. qemu's qcow2 driver answers
// from one cached slice of an L2 table at a time (4 KiB of entries, or the
// whole table when clusters are smaller), and commit and rebase act on those
// answers: a zero run cut at a slice end can be too short to become a zero
// write. To reach the same results, runs are cut where qemu's are.
import type { Extent, Image, LayerStatus } from '../block/types.js'

/** Bytes of guest space one L2 slice covers (Infinity for formats without L2 tables). */
async function sliceCoverage (img: Image, cache: Map<Image, number>): Promise<number> {
  let v = cache.get(img)
  if (v === undefined) {
    const d = await img.details()
    if (img.format !== 'qcow2' || !d.clusterSize) {
      v = Infinity
    } else {
      const entry = d.formatSpecific?.data['extended-l2'] === true ? 16 : 8
      v = Math.min(d.clusterSize, 4096) / entry * d.clusterSize
    }
    cache.set(img, v)
  }
  return v
}

export class StatusRuns {
  private readonly coverage = new Map<Image, number>()

  /** One layer's status at `offset`, cut at the end of qemu's L2 slice. */
  async layer (img: Image, offset: number, length: number): Promise<LayerStatus> {
    const st = await img.layerStatus(offset, length)
    const cover = await sliceCoverage(img, this.coverage)
    if (cover === Infinity) return st
    const sliceEnd = Math.floor(offset / cover) * cover + cover
    return { ...st, length: Math.min(st.length, sliceEnd - offset) }
  }

  /** Status through the chain from `top` (as Image.blockStatus), each layer's answer cut as qemu's. */
  async chain (top: Image, offset: number, length: number): Promise<Extent> {
    let n = length
    let depth = 0
    for (let img: Image = top; ; img = img.backing!, depth++) {
      const st = await this.layer(img, offset, n)
      n = Math.min(n, st.length)
      const below = img.backing
      if (st.kind !== 'unallocated' || !below || offset >= below.size) return { ...st, length: n, offset, depth }
      n = Math.min(n, below.size - offset)
    }
  }
}
