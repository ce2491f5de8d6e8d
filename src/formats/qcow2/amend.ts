// `qemu-img amend` for qcow2: change the options of an existing image in
// place, with qemu 7.2's checks, messages and order (all observed):
//
//   1. encrypt.* options need an encrypted image
//   2. per option, in the option list's order: compat level known,
//      data_file only for images with an external data file, data_file_raw
//      cannot be switched on, refcount_bits a power of two up to 64 (and 16
//      below compat 1.1)
//   3. then the changes, each possibly failing after the earlier ones were
//      made: upgrade to 1.1, refcount width, data file name and raw flag,
//      the backing file (which can only be "changed" to what it is), lazy
//      refcounts, size, encryption key slots, downgrade to 0.10.
import { BlockError } from '../../cli/errors.js'
import { isOn } from '../../cli/create-options.js'
import { SecretStore } from '../../block/secrets.js'
import { AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, INCOMPAT_DATA_FILE } from './header.js'
import { rewriteHeader } from './header-write.js'
import { AmendProgress, type StatusCallback } from './amend-progress.js'
import type { Qcow2Image } from './driver.js'

export interface AmendOptions {
  force: boolean
  secrets?: SecretStore
  /** overall progress: `done` of `total` units */
  progress?: StatusCallback
}

function fail (message: string, errno = 'EINVAL'): never {
  throw new BlockError(message, errno)
}

function compatLevel (v: string): number {
  if (v === '0.10' || v === 'v2') return 2
  if (v === '1.1' || v === 'v3') return 3
  fail(`Unknown compatibility level ${v}`)
}

export async function amendQcow2 (img: Qcow2Image, values: Record<string, string>, opts: AmendOptions): Promise<void> {
  const h = img.header
  const has = (k: string): boolean => values[k] !== undefined
  const encrypt = Object.keys(values).filter(k => k.startsWith('encrypt.'))
  if (encrypt.length > 0 && !img.shared.crypto) fail('Can\'t amend encryption options - encryption not present')

  const version = has('compat') ? compatLevel(values.compat) : h.version
  const hasDataFile = (h.incompatible & INCOMPAT_DATA_FILE) !== 0n
  if (has('data_file') && !hasDataFile) fail('data-file can only be set for images that use an external data file')
  const dataFileRaw = has('data_file_raw') ? isOn(values.data_file_raw) : undefined
  if (dataFileRaw && !(h.autoclear & AUTOCLEAR_DATA_FILE_RAW)) fail('data-file-raw cannot be set on existing images')
  let refcountOrder: number | undefined
  if (has('refcount_bits')) {
    const bits = BigInt(values.refcount_bits)
    if (bits <= 0n || bits > 64n || (bits & (bits - 1n)) !== 0n) fail('Refcount width must be a power of two and may not exceed 64 bits')
    if (version < 3 && bits !== 16n) {
      fail('Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)')
    }
    refcountOrder = Math.log2(Number(bits))
  }

  const upgrade = version > h.version
  const downgrade = version < h.version
  const changeWidth = refcountOrder !== undefined && refcountOrder !== h.refcountOrder
  const progress = new AmendProgress([upgrade, changeWidth, downgrade].filter(Boolean).length, opts.progress)
  let op = 0
  const { upgradeQcow2, downgradeQcow2 } = await import('./amend-version.js')
  if (upgrade) await upgradeQcow2(img, progress.operation(op++))
  if (changeWidth) {
    const { changeRefcountOrder } = await import('./refcount-order.js')
    await changeRefcountOrder(img, refcountOrder!, progress.operation(op++))
  }

  if (has('data_file') || dataFileRaw === false) {
    if (has('data_file')) h.dataFile = values.data_file === '' ? undefined : values.data_file
    if (dataFileRaw === false) h.autoclear &= ~AUTOCLEAR_DATA_FILE_RAW
    await rewriteHeader(img.store, h, img.geo.clusterSize)
  }

  if (has('backing_file') || has('backing_fmt')) {
    if (values.backing_file !== img.backingName || values.backing_fmt !== img.backingFormat) {
      fail('Cannot amend the backing file\nYou can use \'qemu-img rebase\' instead.')
    }
  }

  if (has('lazy_refcounts')) {
    const lazy = isOn(values.lazy_refcounts)
    if (lazy && version < 3) fail('Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)')
    if (lazy !== ((h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n)) {
      // refcounts on disk must be exact before the image stops being marked as lazy
      await img.shared.writer!.flush()
      h.compatible = lazy ? h.compatible | COMPAT_LAZY_REFCOUNTS : h.compatible & ~COMPAT_LAZY_REFCOUNTS
      await rewriteHeader(img.store, h, img.geo.clusterSize)
    }
  }

  if (has('size') && values.size !== '0') {
    const size = BigInt(values.size)
    if (size < 0n) fail('Image size cannot be negative')
    await img.resize!(Number(size), { shrink: true })
  }

  if (encrypt.length > 0) {
    // LUKS key slots: the crypto layer's rules and messages (state, keyslot, secrets, --force)
    const { amendQcow2Encryption } = await import('../../crypto/index.js')
    const stripped = Object.fromEntries(encrypt.map(k => [k.slice('encrypt.'.length), values[k]]))
    await amendQcow2Encryption(img.shared.crypto, stripped, opts.secrets ?? new SecretStore(), opts.force)
  }

  if (downgrade) await downgradeQcow2(img, progress.operation(op++))
}
