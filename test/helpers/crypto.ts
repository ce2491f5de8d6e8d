// Helpers for encryption tests: creating encrypted images with the real
// qemu-img (helpers/run.ts runs it again when its PBKDF calibration gives
// up), reading them through qimg's driver layer, and finding where qcow2
// keeps a guest cluster.
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { openImage } from '../../src/block/open.js'
import { SecretStore } from '../../src/block/secrets.js'
import { qemuImgOk } from './run.js'

/** Create a LUKS-encrypted qcow2 with secret `password` and extra encrypt.* options. */
export function makeLuksQcow2 (file: string, size: string, password: string, extra = ''): void {
  qemuImgOk(['create', '-q', '-f', 'qcow2', '--object', `secret,id=sec0,data=${password}`,
    '-o', `encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10${extra}`, file, size])
}

/** qemu-io on an encrypted qcow2 through --image-opts; throws on failure. */
export function qemuIoSecret (file: string, password: string, commands: string[], driver = 'qcow2'): string {
  const key = driver === 'qcow2' ? 'encrypt.key-secret' : 'key-secret'
  const args = ['--object', `secret,id=sec0,data=${password}`, '--image-opts', `driver=${driver},file.filename=${file},${key}=sec0`]
  for (const c of commands) args.push('-c', c)
  const out = execFileSync('qemu-io', args, { encoding: 'utf8' })
  if (/fail|error/i.test(out)) throw new Error(`qemu-io ${commands.join('; ')}: ${out}`)
  return out
}

/** The raw guest contents according to the real qemu-img. */
export function qemuRaw (file: string, password: string, out: string, driver = 'qcow2'): Buffer {
  const key = driver === 'qcow2' ? 'encrypt.key-secret' : 'key-secret'
  execFileSync('qemu-img', ['convert', '-O', 'raw', '--object', `secret,id=sec0,data=${password}`,
    '--image-opts', `driver=${driver},file.filename=${file},${key}=sec0`, out])
  return fs.readFileSync(out)
}

/** The guest contents read through qimg's driver layer. */
export async function qimgRaw (file: string, password: string, options: Record<string, string> = { 'encrypt.key-secret': 'sec0' }, format?: string): Promise<Buffer> {
  const secrets = new SecretStore()
  secrets.add('sec0', Buffer.from(password))
  const img = await openImage(file, { secrets, options, format })
  try {
    const buf = Buffer.alloc(img.size)
    // in odd pieces, so reads start and end inside clusters and sectors
    for (let pos = 0; pos < buf.length;) {
      const n = Math.min(buf.length - pos, 70000 + (pos % 3) * 512)
      await img.read(buf.subarray(pos, pos + n), pos)
      pos += n
    }
    return buf
  } finally {
    await img.close()
  }
}

/** The message of qimg's failure to open (the part qemu prints after "Could not open 'X': "). */
export async function qimgOpenError (file: string, password: string | undefined, options: Record<string, string>): Promise<string> {
  const secrets = new SecretStore()
  if (password !== undefined) secrets.add('sec0', Buffer.from(password))
  try {
    const img = await openImage(file, { secrets, options })
    await img.close()
    return ''
  } catch (e) {
    return (e as Error).message
  }
}

/** qemu-img's "Could not open 'X': reason" reduced to the reason. */
export function openReason (stderr: string): string {
  return stderr.replace(/\n$/, '').replace(/^qemu-img: Could not open '.*?': /s, '')
}

/** Host offset of the cluster holding guest offset `guest` in a qcow2 file (0 if unallocated). */
export function qcow2HostCluster (file: string, guest: number): number {
  const f = fs.readFileSync(file)
  const cs = 2 ** f.readUInt32BE(20)
  const l1 = Number(f.readBigUInt64BE(40))
  const perL2 = cs / 8
  const cluster = Math.floor(guest / cs)
  const l2 = Number(f.readBigUInt64BE(l1 + 8 * Math.floor(cluster / perL2)) & 0x00fffffffffffe00n)
  if (l2 === 0) return 0
  return Number(f.readBigUInt64BE(l2 + 8 * (cluster % perL2)) & 0x00fffffffffffe00n)
}

/** The crypto header extension's { offset, length } of a qcow2 file. */
export function qcow2CryptoArea (file: string): { offset: number, length: number } {
  const f = fs.readFileSync(file)
  let pos = f.readUInt32BE(100)
  for (;;) {
    const type = f.readUInt32BE(pos)
    const len = f.readUInt32BE(pos + 4)
    if (type === 0) throw new Error('no crypto header extension')
    if (type === 0x0537be77) return { offset: Number(f.readBigUInt64BE(pos + 8)), length: Number(f.readBigUInt64BE(pos + 16)) }
    pos += 8 + ((len + 7) & ~7)
  }
}
