// A ByteStore is where an image's bytes live: a local file today (the
// "file" protocol in QEMU's terms). Formats see only this interface.

export interface DataRun {
  /** true when [offset, end) holds data, false when it is a hole (reads as zero) */
  data: boolean
  end: number
}

export interface ByteStore {
  /** the name used in messages and in map's "filename" */
  readonly filename: string
  readonly writable: boolean
  /** the open file, when the store is one (for copies the native addon does itself) */
  readonly fd?: number
  /** current length in bytes */
  size(): Promise<number>
  /** Read buf.length bytes at offset; bytes past the end read as zero. Returns bytes really read. */
  read(buf: Buffer, offset: number): Promise<number>
  write(buf: Buffer, offset: number): Promise<void>
  truncate(size: number): Promise<void>
  /** Make [offset, offset+length) read as zero, freeing space where the file system can. */
  punchHole(offset: number, length: number): Promise<void>
  /** Make [offset, offset+length) read as zero keeping it allocated (FALLOC_FL_ZERO_RANGE, else written zeros). */
  zeroRange?(offset: number, length: number): Promise<void>
  /** Allocate space (fallocate) without changing contents; extends the file when needed. */
  allocate(offset: number, length: number): Promise<void>
  /** Where the data/hole run containing offset ends (SEEK_DATA/SEEK_HOLE). */
  dataRun(offset: number): Promise<DataRun>
  /** Bytes the file really occupies on disk (st_blocks * 512). */
  allocatedSize(): Promise<number>
  flush(): Promise<void>
  close(): Promise<void>
}
