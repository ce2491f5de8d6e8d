// What a read-write open does about autoclear features and bitmaps, as qemu
// does it: autoclear bits qimg does not know are cleared (their extensions'
// data may be invalidated by our writes); a bitmaps extension the autoclear
// bit does not vouch for (written by a program that did not know bitmaps, or
// in a version 2 image) is dropped from the header. Then the consistent
// bitmaps are loaded and marked in use.
import { AUTOCLEAR_BITMAPS, AUTOCLEAR_KNOWN } from './header.js'
import { rewriteHeader } from './header-write.js'
import { Qcow2Bitmaps } from './bitmap-store.js'
import type { Qcow2Image } from './driver.js'

export async function openBitmapsForWriting (img: Qcow2Image): Promise<Qcow2Bitmaps> {
  const h = img.header
  let rewrite = false
  if (h.version >= 3 && (h.autoclear & ~AUTOCLEAR_KNOWN) !== 0n) {
    h.autoclear &= AUTOCLEAR_KNOWN
    rewrite = true
  }
  if (h.bitmapsExt && (h.version < 3 || !(h.autoclear & AUTOCLEAR_BITMAPS))) {
    h.bitmapsExt = undefined
    rewrite = true
  }
  if (rewrite) await rewriteHeader(img.store, h, img.geo.clusterSize)
  const store = new Qcow2Bitmaps(img, img.shared.bitmaps)
  await store.openForWriting()
  return store
}
