// The MBR (DOS) partition table: four primary slots in sector 0, and for an
// extended partition a chain of EBRs, each holding one logical partition
// (numbered 5, 6, ... as Linux does) and a link to the next EBR. Tables are
// hostile input: every LBA is bounded by the disk, the EBR chain is bounded
// in length and may not revisit a sector.
import { clipToDisk, type Partition, type ReadAt } from './types.js'

export const SECTOR = 512
/** Linux's limit on partitions per disk bounds the EBR walk too */
export const MAX_PARTITIONS = 256
export const TYPE_GPT_PROTECTIVE = 0xee

export interface MbrEntry {
  status: number
  type: number
  /** in sectors */
  startLba: number
  sectors: number
}

export function isExtended (type: number): boolean {
  return type === 0x05 || type === 0x0f || type === 0x85
}

/** The four entries of a boot sector, or null when it carries no MBR (no 55 AA, or boot flags that are neither 0 nor 0x80). */
export function decodeMbrSector (sector: Buffer): MbrEntry[] | null {
  if (sector.length < SECTOR || sector[510] !== 0x55 || sector[511] !== 0xaa) return null
  const entries: MbrEntry[] = []
  for (let i = 0; i < 4; i++) {
    const e = 446 + i * 16
    entries.push({ status: sector[e], type: sector[e + 4], startLba: sector.readUInt32LE(e + 8), sectors: sector.readUInt32LE(e + 12) })
  }
  return entries
}

/** Linux refuses a table whose boot indicators are not 0 or 0x80 (it is likely a boot sector of something else). */
export function plausibleMbr (entries: MbrEntry[]): boolean {
  return entries.every(e => e.status === 0 || e.status === 0x80)
}

function hex2 (n: number): string { return n.toString(16).padStart(2, '0') }

/** The partitions of an MBR-labelled disk (primary slots 1-4, logical 5+). */
export async function readMbrPartitions (entries: MbrEntry[], read: ReadAt, diskSize: number): Promise<Partition[]> {
  const out: Partition[] = []
  const push = (p: Partition): void => {
    const clipped = clipToDisk(p, diskSize)
    if (clipped) out.push(clipped)
  }
  let extended: MbrEntry | undefined
  entries.forEach((e, i) => {
    if (e.type === 0 || e.sectors === 0) return
    push({ number: i + 1, start: e.startLba * SECTOR, length: e.sectors * SECTOR, type: hex2(e.type) })
    // like Linux, only the first extended partition holds logical ones
    if (isExtended(e.type) && !extended) extended = e
  })
  if (extended) out.push(...await readLogical(extended, read, diskSize))
  return out
}

async function readLogical (ext: MbrEntry, read: ReadAt, diskSize: number): Promise<Partition[]> {
  const out: Partition[] = []
  const extStart = ext.startLba * SECTOR
  const extEnd = Math.min(extStart + ext.sectors * SECTOR, diskSize)
  const seen = new Set<number>()
  let ebr = extStart
  let number = 5
  while (number <= MAX_PARTITIONS && ebr >= extStart && ebr + SECTOR <= extEnd && !seen.has(ebr)) {
    seen.add(ebr)
    const entries = decodeMbrSector(await read(ebr, SECTOR))
    if (!entries) break
    let next: number | undefined
    let data: MbrEntry | undefined
    for (const e of entries) {
      if (e.type === 0 || e.sectors === 0) continue
      if (isExtended(e.type)) { if (next === undefined) next = extStart + e.startLba * SECTOR } else if (!data) data = e
    }
    if (data) {
      const p = clipToDisk({ number, start: ebr + data.startLba * SECTOR, length: data.sectors * SECTOR, type: hex2(data.type) }, diskSize)
      if (p) out.push(p)
      number++
    }
    if (next === undefined) break
    ebr = next
  }
  return out
}
