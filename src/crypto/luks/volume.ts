// An opened LUKS1 volume: the parsed header, its algorithms, and (once
// unlocked) the payload's sector cipher. The header and key material are
// reached through LuksIO, so the same code serves the standalone luks
// format (header at offset 0 of the file) and qcow2 (header inside the
// qcow2 file, at the full disk encryption header extension's offset).
import { BlockError } from '../../cli/errors.js'
import { requireRunnable } from '../algorithms.js'
import { SectorCipher } from '../sector-cipher.js'
import { LUKS_HEADER_SIZE, decodeLuksHeader, type LuksHeader } from './header.js'
import { luksInfo, type InfoObject } from './info.js'
import { luksSpecFromHeader, type LuksSpec } from './spec.js'
import { unlockLuks } from './unlock.js'

/** Byte access relative to the start of the LUKS header. */
export interface LuksIO {
  /** bytes the header area may span (reads past it are refused) */
  readonly length: number
  read(offset: number, length: number): Promise<Buffer>
  write?(buf: Buffer, offset: number): Promise<void>
}

export class LuksVolume {
  /** set once unlocked */
  cipher?: SectorCipher
  masterKey?: Buffer

  private constructor (readonly io: LuksIO, public header: LuksHeader, readonly spec: LuksSpec) {}

  /** Parse and validate the header (no password needed). */
  static async open (io: LuksIO): Promise<LuksVolume> {
    const buf = await io.read(0, LUKS_HEADER_SIZE)
    const header = decodeLuksHeader(buf)
    const spec = luksSpecFromHeader(header)
    return new LuksVolume(io, header, spec)
  }

  /** Find the master key with `password`; qemu's message when no slot opens. */
  async unlock (password: Buffer): Promise<void> {
    requireRunnable(this.spec.alg, [this.spec.hash, ...(this.spec.ivgenHash ? [this.spec.ivgenHash] : [])])
    const { masterKey } = await unlockLuks(this.header, this.spec, password, (o, l) => this.io.read(o, l))
    this.useMasterKey(masterKey)
  }

  useMasterKey (key: Buffer): void {
    this.masterKey = key
    this.cipher = new SectorCipher(this.spec, key)
  }

  info (): InfoObject { return luksInfo(this.header, this.spec) }

  /** bytes of payload offset (where the standalone format's data starts) */
  get payloadOffset (): number { return this.header.payloadOffset * 512 }
}

/** LuksIO over a region of a store-like reader, with the region's bound enforced. */
export function regionIO (
  read: (buf: Buffer, offset: number) => Promise<number>,
  start: number, length: number,
  write?: (buf: Buffer, offset: number) => Promise<void>,
): LuksIO {
  const inside = (offset: number, len: number): void => {
    if (offset < 0 || len < 0 || offset + len > length) {
      throw new BlockError('Request for data outside of extension header', 'EINVAL')
    }
  }
  return {
    length,
    async read (offset, len) {
      inside(offset, len)
      const buf = Buffer.alloc(len)
      await read(buf, start + offset)
      return buf
    },
    write: write && (async (buf, offset) => {
      inside(offset, buf.length)
      await write(buf, start + offset)
    }),
  }
}
