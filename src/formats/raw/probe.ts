// raw matches anything, with the lowest score: every other format wins over it.
export function probeRaw (_head: Buffer, _filename: string): number { return 1 }
