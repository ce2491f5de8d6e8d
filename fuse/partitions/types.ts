// What a partition table parser returns, and how it reads the disk: parsers
// are pure over a `ReadAt` so unit tests feed them plain Buffers.

export interface Partition {
  /** the number the table gives it, as Linux names it (sda1, sda5 ...) */
  number: number
  /** byte offset and length within the disk */
  start: number
  length: number
  /** MBR: the type byte as two hex digits; GPT: the type GUID */
  type: string
  /** GPT partition name, when set */
  name?: string
}

/** Read `length` bytes at `offset`; bytes past the end of the disk read as zero. */
export type ReadAt = (offset: number, length: number) => Promise<Buffer>

/** Linux's rule for a partition that runs past the end of the disk: truncate it; one that starts past it is dropped. */
export function clipToDisk (p: Partition, diskSize: number): Partition | null {
  if (p.length <= 0 || p.start >= diskSize) return null
  return p.start + p.length > diskSize ? { ...p, length: diskSize - p.start } : p
}
