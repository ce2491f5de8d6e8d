// Opening images: from a filename (probing the format or taking -f), from an
// --image-opts string, with the backing chain below. Errors carry qemu's
// inner wording; callers prefix "Could not open 'NAME': ".
import { realpathSync } from 'node:fs'
import { BlockError, strerror, errnoOf } from '../cli/errors.js'
import { parseKeyValues, qemuBool } from '../cli/qemu-opts.js'
import { checkRuntimeOptions, FILE_OPTIONS } from './runtime-options.js'
import { FileStore } from '../io/file-store.js'
import type { ByteStore } from '../io/byte-store.js'
import { findFormat, probeFormat, PROBE_SIZE } from './registry.js'
import { resolveRelative } from './paths.js'
import { lockFor } from '../io/lock.js'
import { SecretStore } from './secrets.js'
import { ClusterCache, DEFAULT_CLUSTER_CACHE, DEFAULT_METADATA_CACHE } from './cache.js'
import type { Image, OpenContext } from './types.js'

export interface OpenImageOptions {
  /** -f: skip probing */
  format?: string
  /** default true */
  readOnly?: boolean
  /** -U: do not take or respect image locks (qimg takes none yet) */
  forceShare?: boolean
  secrets?: SecretStore
  /** format-level options (encrypt.key-secret=..., etc.) */
  options?: Record<string, string>
  /** do not open the backing chain (info without --backing-chain) */
  noBacking?: boolean
  /** open backing files writable too (commit) */
  writableBacking?: boolean
  /** where qemu's warnings go (e.g. the probed-raw warning); `prefixed`: to be printed after the program name */
  onWarning?: (message: string, prefixed?: boolean) => void
  /** only metadata will be used (info, map of encrypted images): no key needed */
  noIO?: boolean
  /** opened by `check`: see OpenContext.check (applies to the top image only) */
  check?: boolean
  /** caches to use (shared by the whole chain; the FUSE server shares them across views) */
  clusterCache?: ClusterCache
  metadataCache?: ClusterCache
  /** flushes do nothing (cache mode unsafe): the whole chain and any data file */
  noFlush?: boolean
}

const MAX_CHAIN_DEPTH = 1024

/** Open a file as a ByteStore, with qemu's messages for the usual failures. */
export async function openFileStore (filename: string, writable: boolean, noFlush = false): Promise<FileStore> {
  try {
    return await FileStore.open(filename, { writable, noFlush })
  } catch (err) {
    const code = errnoOf(err)
    if (code === 'EISDIR') throw new BlockError(`'file' driver requires '${filename}' to be a regular file`, 'EINVAL')
    throw new BlockError(`Could not open '${filename}': ${strerror(code)}`, code)
  }
}

/**
 * Split an --image-opts string into the format, the file name and format
 * options, with qemu's messages for a missing file and for unknown options
 * of the file protocol.
 */
export function parseImageOpts (text: string): { format?: string, filename: string, options: Record<string, string> } {
  const options: Record<string, string> = {}
  const fileOptions: Record<string, string> = {}
  let format: string | undefined
  let fileNode: string | undefined
  // a bare word names an existing block node ("file"), which qemu-img never has
  for (const [k, v] of parseKeyValues(text, 'file')) {
    if (k === 'driver') format = v
    else if (k === 'file') fileNode = v
    else if (k.startsWith('file.')) fileOptions[k.slice(5)] = v
    else options[k] = v
  }
  if (fileNode !== undefined) throw new BlockError(`Cannot find device='${fileNode}' nor node-name='${fileNode}'`, 'ENODEV')
  const filename = fileOptions.filename
  if (filename === undefined) throw new BlockError('A block device must be specified for "file"', 'EINVAL')
  checkRuntimeOptions(fileOptions, FILE_OPTIONS, { kind: 'protocol', name: 'file' })
  // the opener takes image locks unless file.locking=off
  if (fileOptions.locking !== undefined) options['file.locking'] = fileOptions.locking
  return { format, filename, options }
}

/** A boolean runtime option, if given; qemu's message for a value that is none. */
function boolOption (options: Record<string, string> | undefined, name: string): boolean | undefined {
  const v = options?.[name]
  if (v === undefined) return undefined
  const on = qemuBool(v)
  if (on === undefined) throw new BlockError(`Parameter '${name}' expects 'on' or 'off'`, 'EINVAL')
  return on
}

async function readHead (store: ByteStore): Promise<Buffer> {
  const head = Buffer.alloc(PROBE_SIZE)
  const n = await store.read(head, 0)
  return head.subarray(0, n)
}

async function openOne (filename: string, opts: OpenImageOptions, secrets: SecretStore, depth: number, seen: Set<string>): Promise<Image> {
  const readOnly = opts.readOnly ?? true
  let format = opts.format
  if (format !== undefined && !findFormat(format)) throw new BlockError(`Unknown driver '${format}'`, 'EINVAL')
  // (qemu checks no-flush first; O_DIRECT itself is not used: see cli/cache-mode.ts)
  const noFlush = boolOption(opts.options, 'cache.no-flush') ?? opts.noFlush ?? false
  boolOption(opts.options, 'cache.direct')
  const store = await openFileStore(filename, !readOnly, noFlush)
  let image: Image
  try {
    if (format === undefined) {
      format = probeFormat(await readHead(store), filename) ?? 'raw'
      // (backing files are opened read-only first and only reopened for writing: never a warning for them)
      if (format === 'raw' && !readOnly && depth === 0) {
        opts.onWarning?.(`WARNING: Image format was not specified for '${filename}' and probing guessed raw.\n` +
          '         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n' +
          '         Specify the \'raw\' format explicitly to remove the restrictions.\n')
      }
    }
    if (opts.forceShare && !readOnly) throw new BlockError('force-share=on can only be used with read-only images', 'EINVAL')
    if (opts.options?.['file.locking'] !== 'off') store.lock(lockFor(format, !readOnly, opts.forceShare ?? false))
    const driver = await findFormat(format)!.load()
    if (driver.runtimeOptions) checkRuntimeOptions(opts.options ?? {}, [...driver.runtimeOptions, 'file.locking'], { kind: 'format', name: driver.name })
    const ctx: OpenContext = {
      filename,
      readOnly,
      options: opts.options ?? {},
      secrets,
      // qemu opens external data files by the name as given: relative to the working directory
      openFile: (name, writable) => openFileStore(name, writable, noFlush),
      clusterCache: opts.clusterCache!,
      metadataCache: opts.metadataCache!,
      noIO: opts.noIO ?? false,
      warn: (m, o) => opts.onWarning?.(m, o?.prefixed),
      check: opts.check,
    }
    image = await driver.open(store, ctx)
  } catch (err) {
    await store.close().catch(() => undefined)
    throw err
  }
  if (opts.noBacking || image.backingName === undefined || image.backingName === '') return image
  try {
    image.backing = await openBacking(image, { ...opts, noFlush }, secrets, depth + 1, seen)
  } catch (err) {
    await image.close().catch(() => undefined)
    throw err
  }
  return image
}

async function openBacking (image: Image, opts: OpenImageOptions, secrets: SecretStore, depth: number, seen: Set<string>): Promise<Image> {
  const name = resolveRelative(image.filename, image.backingName!)
  try {
    if (depth > MAX_CHAIN_DEPTH) throw new BlockError('Backing chain is too deep', 'EINVAL')
    let real: string | undefined
    try { real = realpathSync(name) } catch { /* reported by the open below */ }
    if (real !== undefined) {
      if (seen.has(real)) throw new BlockError(`Backing file '${name}' creates an infinite loop.`, 'ELOOP')
      seen.add(real)
    }
    return await openOne(name, {
      ...opts,
      format: image.backingFormat,
      readOnly: !opts.writableBacking,
      options: {},
      check: false,
    }, secrets, depth, seen)
  } catch (err) {
    if (err instanceof BlockError) throw new BlockError(`Could not open backing file: ${err.message}`, err.errno)
    throw err
  }
}

/** Open an image and (unless noBacking) its whole backing chain. */
export async function openImage (filename: string, opts: OpenImageOptions = {}): Promise<Image> {
  if (opts.forceShare && opts.readOnly === false) throw new BlockError('force-share=on can only be used with read-only images', 'EINVAL')
  const seen = new Set<string>()
  try { seen.add(realpathSync(filename)) } catch { /* reported by open */ }
  const withCaches: OpenImageOptions = {
    ...opts,
    clusterCache: opts.clusterCache ?? new ClusterCache(DEFAULT_CLUSTER_CACHE),
    metadataCache: opts.metadataCache ?? new ClusterCache(DEFAULT_METADATA_CACHE),
  }
  return openOne(filename, withCaches, opts.secrets ?? new SecretStore(), 0, seen)
}
