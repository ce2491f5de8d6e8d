// "QFI\xfb" followed by a version of 2 or more.
export function probeQcow2 (head: Buffer, _filename: string): number {
  if (head.length >= 8 && head.readUInt32BE(0) === 0x514649fb && head.readUInt32BE(4) >= 2) return 100
  return 0
}
