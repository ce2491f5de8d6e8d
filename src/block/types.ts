// The driver layer's vocabulary. Every command and the FUSE server reach
// images through `Image`; each format provides a `BlockDriver`.
import type { ByteStore } from '../io/byte-store.js'
import type { JsonValue } from '../cli/qjson.js'
import type { SecretStore } from './secrets.js'
import type { ClusterCache } from './cache.js'
import type { DirtyBitmap } from './dirty-bitmap.js'

export type ExtentKind = 'data' | 'zero' | 'unallocated'

/** What one layer (one image file, without its backing chain) says about a range. */
export interface LayerStatus {
  kind: ExtentKind
  /** bytes from the queried offset that share this status (> 0) */
  length: number
  /** where the bytes live in `store`, when they are stored plainly there (map's "offset") */
  hostOffset?: number
  store?: ByteStore
  /** for 'data': allocated, but known to read as zeros (e.g. a hole in the host file) */
  zero?: boolean
  /**
   * for 'data' with hostOffset: the host file may have holes here that read
   * as zeros; chain-wide block status asks `store` (qemu's BDRV_BLOCK_RECURSE)
   */
  checkHost?: boolean
}

/** How a status query may be answered. */
export interface StatusOptions {
  /**
   * Let one answer run on past the end of the format's metadata table (a
   * qcow2 L2 table) while the status stays the same, and over a run of
   * compressed clusters (each is an answer of its own otherwise, as in
   * qemu). Only for callers that merge neighbouring answers or only add
   * them up (WIDE_STATUS): convert's copying walk, commit and rebase act on
   * where answers end.
   */
  wide?: boolean
  /**
   * Let a run of compressed clusters be one answer (each is an answer of
   * its own otherwise, as in qemu): reads, which take a run at a time.
   */
  compressedRuns?: boolean
}

/**
 * Status for walks that merge neighbouring answers or only add them up (map,
 * measure, convert's progress total, the mount's st_blocks): the same result
 * from fewer, longer answers.
 */
export const WIDE_STATUS: StatusOptions = { wide: true }

/** Allocation status through the whole chain: the one source of allocation truth. */
export interface Extent extends LayerStatus {
  offset: number
  /** 0 = the image itself, 1 = its backing file, ... (for 'unallocated': the deepest layer covering offset) */
  depth: number
}

export interface SnapshotInfo {
  id: string
  name: string
  vmStateSize: number
  dateSec: number
  dateNsec: number
  vmClockNsec: number
  icount?: number
}

/** What `info` shows beyond the generic fields. */
export interface ImageDetails {
  clusterSize?: number
  encrypted?: boolean
  dirty?: boolean
  /** QAPI ImageInfoSpecific: { type, data } with keys in schema order */
  formatSpecific?: { type: string, data: { [k: string]: JsonValue | undefined } }
  snapshots?: SnapshotInfo[]
}

export interface WriteZeroesOptions {
  /** the range may be deallocated rather than written (BDRV_REQ_MAY_UNMAP) */
  unmap?: boolean
}

export interface Image extends ImageCapabilities {
  readonly format: string
  /** the name it was opened by (messages, info's "filename") */
  readonly filename: string
  readonly store: ByteStore
  /** guest-visible size in bytes */
  readonly size: number
  readonly readOnly: boolean
  /** the opened backing image, if the chain was opened */
  backing: Image | null
  /** backing file name as recorded in the image, and its format if recorded */
  readonly backingName?: string
  readonly backingFormat?: string

  read(buf: Buffer, offset: number): Promise<void>
  /**
   * Bring what reading [offset, offset+length) would have to decompress into
   * the cluster cache, copying nothing out (read-ahead for FUSE readers).
   */
  prefetch?(offset: number, length: number): Promise<void>
  /** `hooks.onAllocated` (formats that allocate as they write): see WriteHooks */
  write(buf: Buffer, offset: number, hooks?: WriteHooks): Promise<void>
  writeZeroes(offset: number, length: number, opts?: WriteZeroesOptions): Promise<void>
  /**
   * Where the guest bytes [offset, offset+length) are stored as they are, in
   * one piece of `store`: writing there is writing them (raw: always, within
   * the image). Undefined where a format has to place or transform them.
   * convert hands such ranges to the addon to copy (see ops/convert.ts).
   */
  directRange?(offset: number, length: number): { store: ByteStore, offset: number } | undefined
  discard(offset: number, length: number): Promise<void>
  /** status within this image only (no backing) */
  layerStatus(offset: number, length: number, opts?: StatusOptions): Promise<LayerStatus>
  /** status through the chain, with depth */
  blockStatus(offset: number, length: number, opts?: StatusOptions): Promise<Extent>
  details(): Promise<ImageDetails>
  flush(): Promise<void>
  /** close this image and its backing chain */
  close(): Promise<void>
}

/**
 * A line a format's check prints on stderr while checking. `report` lines are
 * qemu's error_report(): the program name and ": " go first.
 */
export type CheckMessage = string | { report: string }

/** QAPI ImageCheck, as `check` reports it (absent fields are not printed). */
export interface CheckResult {
  checkErrors: number
  corruptions: number
  leaks: number
  corruptionsFixed: number
  leaksFixed: number
  imageEndOffset?: number
  totalClusters?: number
  allocatedClusters?: number
  fragmentedClusters?: number
  compressedClusters?: number
  /** messages qemu prints to stderr while checking ("ERROR ...", "Leaked cluster ...") in order */
  messages: CheckMessage[]
}

/** A persistent dirty bitmap as `bitmap` and `convert --bitmaps` see it. */
export interface BitmapInfo {
  name: string
  granularity: number
  /** recording guest writes (qcow2's 'auto' flag) */
  enabled: boolean
  /** found in use when the image was opened (qcow2's 'in-use'): qemu calls it inconsistent */
  inconsistent: boolean
}

/**
 * The persistent dirty bitmaps of an image. Lookups, name and state checks
 * are the caller's (src/ops/bitmap.ts, with qemu's messages); the format
 * refuses what it cannot store (BlockError with its reason).
 */
export interface PersistentBitmaps {
  list(): BitmapInfo[]
  /** a copy of a consistent bitmap's contents */
  read(name: string): Promise<DirtyBitmap>
  /** qemu's default granularity for a new bitmap of this image */
  defaultGranularity(): number
  /** can this image store persistent bitmaps at all? (qcow2: version 3) */
  storable(): boolean
  /** can a bitmap with this name and granularity be stored? (throws the format's reason) */
  checkStorable(name: string, granularity: number): void
  add(name: string, opts: { granularity: number, enabled: boolean }): Promise<void>
  remove(name: string): Promise<void>
  clear(name: string): Promise<void>
  setEnabled(name: string, enabled: boolean): Promise<void>
  /** name |= source (same disk size) */
  merge(name: string, source: DirtyBitmap): Promise<void>
}

export type RepairMode = 'leaks' | 'all'

export type Preallocation = 'off' | 'metadata' | 'falloc' | 'full'

/** Snapshot selection as -l / -s / --snapshot give it. */
export interface SnapshotSpec { id?: string, name?: string }

/**
 * For a caller that issues writes in order and wants the image laid out as
 * if each had finished before the next began (convert, as qemu-img writes):
 * `onAllocated` is called once the write has taken its host space (formats
 * that allocate as they write, like qcow2), after which the next write may
 * start while this one's data is still on its way. A write that cannot say
 * (several tables, encryption) calls it when it is done; formats that
 * allocate nothing may call it at once or at the end.
 */
export interface WriteHooks {
  onAllocated?: () => void
}

/**
 * Optional capabilities. A format implements what it supports; ops test for
 * the method and report qemu's "not supported" message otherwise.
 */
export interface ImageCapabilities {
  /**
   * Consistency check; with `repair`, fix what can be fixed (the image must be
   * open read-write, opened with `check`). A check that cannot complete throws
   * a BlockError that may carry `messages` (CheckMessage[] printed so far) and
   * `reports` (error_report lines), for qemu-img's "Check failed: <errno>".
   */
  check?(repair?: RepairMode): Promise<CheckResult>
  resize?(size: number, opts: { preallocation?: Preallocation, shrink?: boolean }): Promise<void>
  /** write one whole cluster compressed (convert -c) */
  writeCompressed?(buf: Buffer, offset: number, packed?: Buffer | null, hooks?: WriteHooks): Promise<void>
  /**
   * Store consecutive clusters from `offset`, each as compressForWrite
   * compressed it (a Buffer for every one): what as many writeCompressed
   * calls would store, placed the same way, with fewer writes.
   */
  writePackedClusters?(offset: number, packed: Buffer[], hooks?: WriteHooks): Promise<void>
  /**
   * Compress a cluster ahead of writeCompressed (null: it will be stored
   * plainly); pass the result as `packed`. Lets convert compress clusters in
   * parallel while their writes stay in order.
   */
  compressForWrite?(buf: Buffer): Promise<Buffer | null>
  /** the cluster size compressed writes must use */
  compressedClusterSize?(): number
  listSnapshots?(): SnapshotInfo[]
  openSnapshot?(spec: SnapshotSpec): Promise<Image>
  createSnapshot?(name: string, opts: { dateSec: number, dateNsec: number, vmClockNsec?: number }): Promise<void>
  applySnapshot?(spec: SnapshotSpec): Promise<void>
  deleteSnapshot?(spec: SnapshotSpec): Promise<void>
  /** rewrite the backing file name/format in the header (rebase -u, commit) */
  setBacking?(name: string | undefined, format: string | undefined): Promise<void>
  /** drop all data of this layer so it reads through to the backing file (commit without -d) */
  makeEmpty?(): Promise<void>
  /** persistent dirty bitmaps (read-only images can list and read them) */
  persistentBitmaps?(): PersistentBitmaps
  /**
   * amend: `options` are the -o values (parsed against the driver's
   * amendOptions); `progress` gets (done, total) work units
   */
  amend?(options: Record<string, string>, opts: { force: boolean, secrets?: SecretStore, progress?: (done: number, total: number) => void }): Promise<void>
}

/** Driver options and services handed to a format's open(). */
export interface OpenContext {
  /** display name of the image (as given by the user, or resolved backing name) */
  filename: string
  readOnly: boolean
  /** format options from --image-opts / -o style strings (e.g. encrypt.key-secret) */
  options: Record<string, string>
  secrets: SecretStore
  /** open another file (external data files), by its name as given: relative to the working directory, as qemu does */
  openFile(name: string, writable: boolean): Promise<ByteStore>
  /** decompressed/decrypted data clusters; may be shared between images */
  clusterCache: ClusterCache
  /** metadata tables (L2, refcount blocks); may be shared between images */
  metadataCache: ClusterCache
  /** only metadata will be used (info): do not unlock encryption keys */
  noIO: boolean
  /**
   * non-fatal messages qemu prints to stderr (corruption notices, warnings);
   * `prefixed`: printed as qemu's warn_report/error_report do, after the program name
   */
  warn(message: string, opts?: { prefixed?: boolean }): void
  /**
   * opened by `check` (BDRV_O_CHECK): a corrupt or dirty image may be opened
   * read-write so that check can repair it (no automatic repair, no write path)
   */
  check?: boolean
}

/**
 * One -o option of a format, as `create -o help` lists it. A driver lists its
 * options in the order qemu-img prints them on the "Formatting" line.
 */
export interface CreateOptionSpec {
  name: string
  type: 'string' | 'size' | 'bool' | 'number'
  help: string
  /** value printed on create's "Formatting ..." line when the option is not given */
  defaultValue?: string
}

export interface CreateContext {
  secrets: SecretStore
  /** a warning line, printed as "prog: message" */
  warn(message: string): void
}

/** What `measure` asks a format: the space an image converted to it would take. */
export interface MeasureInput {
  /** guest size in bytes */
  size: number
  /** the source image (absent for --size): its allocation decides the required size */
  source?: Image
}

export interface MeasureResult {
  required: number
  fullyAllocated: number
  /** space persistent bitmaps copied from the source would take (when both formats have them) */
  bitmaps?: number
}

export interface BlockDriver {
  readonly name: string
  open(store: ByteStore, ctx: OpenContext): Promise<Image>
  /**
   * options open() understands (--image-opts, 'name.*' for a prefix); when
   * given, any other option is refused as qemu refuses it
   */
  readonly runtimeOptions?: readonly string[]
  /** -o options accepted by create/convert/amend, in the order `-o help` lists them */
  readonly createOptions?: CreateOptionSpec[]
  /** -o options accepted by amend (the image's amend() applies them) */
  readonly amendOptions?: CreateOptionSpec[]
  /**
   * Create an image file. `options` holds the -o values (plus 'size' in bytes,
   * 'backing_file', 'backing_fmt' ...) after validation against createOptions.
   */
  create?(filename: string, options: Record<string, string>, ctx: CreateContext): Promise<void>
  /** `measure`: options are -o values parsed against createOptions */
  measure?(options: Record<string, string>, input: MeasureInput, ctx: CreateContext): Promise<MeasureResult>
  /** images of this format can store compressed clusters (convert -c; Image.writeCompressed) */
  readonly supportsCompression?: boolean
  /** a new image does not read as zeros where nothing was written (qemu's has_zero_init false, e.g. luks) */
  readonly noZeroInit?: boolean
}
