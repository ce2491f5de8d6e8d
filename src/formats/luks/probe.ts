// "LUKS\xba\xbe" and version 1: qemu probes LUKS1 by magic and version
// (a LUKS2 volume probes as raw).
export function probeLuks (head: Buffer, _filename: string): number {
  if (head.length >= 8 && head.readUInt32BE(0) === 0x4c554b53 && head.readUInt16BE(4) === 0xbabe && head.readUInt16BE(6) === 1) return 100
  return 0
}
