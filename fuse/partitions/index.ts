// Finding the partitions of a disk: an MBR whose protective entry announces
// a GPT reads as GPT; any other MBR as DOS partitions; nothing else has any.
import { decodeMbrSector, plausibleMbr, readMbrPartitions, SECTOR, TYPE_GPT_PROTECTIVE } from './mbr.js'
import { readGptPartitions } from './gpt.js'
import type { Partition, ReadAt } from './types.js'

export type { Partition, ReadAt } from './types.js'

export async function scanPartitions (read: ReadAt, diskSize: number): Promise<Partition[]> {
  if (diskSize < SECTOR * 2) return []
  const entries = decodeMbrSector(await read(0, SECTOR))
  if (!entries) return []
  if (entries.some(e => e.type === TYPE_GPT_PROTECTIVE)) {
    // a protective MBR whose GPT is unreadable describes nothing usable
    return (await readGptPartitions(read, diskSize)) ?? []
  }
  if (!plausibleMbr(entries)) return []
  return readMbrPartitions(entries, read, diskSize)
}
