// State shared by the passes of one qcow2 check: the counters qemu reports
// (QAPI ImageCheck), the messages it prints on stderr while checking, and
// guarded access to the image file. A check run is one call of check(); a
// repair runs several passes over the same context.
import { BlockError } from '../../cli/errors.js'
import type { ByteStore } from '../../io/byte-store.js'
import type { CheckMessage } from '../../block/types.js'
import type { OverlapGuard } from './check-overlap.js'
import { writeHeaderIncompatible } from './header-update.js'
import { INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, type Qcow2Header } from './header.js'
import type { Geometry } from './layout.js'

export const FIX_LEAKS = 1
export const FIX_ERRORS = 2

export interface CheckCounters {
  corruptions: number
  leaks: number
  checkErrors: number
  corruptionsFixed: number
  leaksFixed: number
  allocated: number
  fragmented: number
  compressed: number
}

export function zeroCounters (): CheckCounters {
  return { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, allocated: 0, fragmented: 0, compressed: 0 }
}

/** The check could not complete: qemu-img prints "Check failed: <strerror>" and no summary. */
export class CheckAbort extends BlockError {
  /** what the check printed on stderr before it failed */
  messages: CheckMessage[] = []
  /** lines qemu-img prints with its program name first (error_report) just before failing */
  constructor (message: string, errno: string, readonly reports: string[] = []) {
    super(message, errno)
  }
}

/** Hex without leading zeros, as printf's %x / PRIx64. */
export function hex (v: number | bigint): string {
  return v.toString(16)
}

/** printf's %#x: "0" for zero, "0x..." otherwise. */
export function altHex (v: number | bigint): string {
  return v === 0 || v === 0n ? '0' : '0x' + v.toString(16)
}

/** A 64-bit entry given as its two big-endian halves, printed as %llx. */
export function hex64 (hi: number, lo: number): string {
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(8, '0')
}

export class CheckContext {
  readonly cs: number
  readonly clusterBits: number
  readonly messages: CheckMessage[] = []
  /** guards repair writes against overwriting other metadata (set once the layout is known) */
  guard?: OverlapGuard
  res: CheckCounters = zeroCounters()
  fileSize = 0
  /** set after a fatal corruption event in read-write mode: qemu refuses all further I/O */
  dead = false
  /** counts repairs written into L1/L2 tables (tables read ahead must then be read again) */
  tableWrites = 0

  constructor (
    readonly store: ByteStore,
    public header: Qcow2Header,
    readonly geo: Geometry,
    /** FIX_LEAKS | FIX_ERRORS of this pass (0 = only report) */
    public fix: number,
    readonly writable: boolean,
    /** shared with the image: qemu reports only the first corruption event */
    private readonly corruptionState: { corruptionReported: boolean },
  ) {
    this.cs = geo.clusterSize
    this.clusterBits = geo.clusterBits
  }

  get hasDataFile (): boolean { return (this.header.incompatible & INCOMPAT_DATA_FILE) !== 0n }

  /** clusters the image file spans (a partial last cluster counts) */
  get fileClusters (): number { return Math.ceil(this.fileSize / this.cs) }

  say (line: string): void { this.messages.push(line) }

  /** a line qemu prints through error_report (with the program name first) */
  sayReport (line: string): void { this.messages.push({ report: line }) }

  async refreshFileSize (): Promise<void> { this.fileSize = await this.store.size() }

  async read (buf: Buffer, offset: number): Promise<void> {
    if (this.dead) throw new BlockError('Input/output error', 'EIO')
    await this.store.read(buf, offset)
  }

  async write (buf: Buffer, offset: number): Promise<void> {
    if (this.dead) throw new BlockError('Input/output error', 'EIO')
    await this.store.write(buf, offset)
  }

  /**
   * A metadata inconsistency found outside the check's own bookkeeping (an
   * unreadable refcount block). Read-only, qemu only reports it; read-write
   * it marks the image corrupt on disk and refuses further I/O.
   */
  async corruptionEvent (message: string): Promise<BlockError> {
    const first = !this.corruptionState.corruptionReported
    this.corruptionState.corruptionReported = true
    if (!this.writable) {
      if (first) this.say(`qcow2: Image is corrupt: ${message}; further non-fatal corruption events will be suppressed`)
      return new BlockError(message, 'EIO')
    }
    if (!this.dead) {
      this.say(`qcow2: Marking image as corrupt: ${message}; further corruption events will be suppressed`)
      if (!(this.header.incompatible & INCOMPAT_CORRUPT)) {
        await writeHeaderIncompatible(this.store, this.header, this.header.incompatible | INCOMPAT_CORRUPT).catch(() => undefined)
      }
      this.dead = true
    }
    return new BlockError(message, 'EIO')
  }
}
