// The format table. Probes are tiny and always loaded; a driver's code is
// imported only when an image of that format is opened or created, which
// keeps start-up fast.
import type { BlockDriver } from './types.js'
import { probeRaw } from '../formats/raw/probe.js'
import { probeQcow2 } from '../formats/qcow2/probe.js'
import { probeLuks } from '../formats/luks/probe.js'

export interface FormatEntry {
  readonly name: string
  /** 0..100 for the first 2048 bytes of a file: the highest score wins */
  readonly probe?: (head: Buffer, filename: string) => number
  /** formats qemu can only read (bochs, cloop, dmg) */
  readonly readOnly?: boolean
  load (): Promise<BlockDriver>
}

export const FORMATS: readonly FormatEntry[] = [
  { name: 'raw', probe: probeRaw, load: async () => (await import('../formats/raw/driver.js')).rawDriver },
  { name: 'qcow2', probe: probeQcow2, load: async () => (await import('../formats/qcow2/driver.js')).qcow2Driver },
  { name: 'luks', probe: probeLuks, load: async () => (await import('../formats/luks/driver.js')).luksDriver },
]

export function findFormat (name: string): FormatEntry | undefined {
  return FORMATS.find(f => f.name === name)
}

/** Names shown after "Supported formats:" in the help text. */
export function supportedFormatNames (): string[] {
  return FORMATS.map(f => f.name).sort()
}

/** The probed format name, or undefined when the head matches nothing. */
export function probeFormat (head: Buffer, filename: string): string | undefined {
  let best: FormatEntry | undefined
  let bestScore = 0
  for (const f of FORMATS) {
    const score = f.probe ? f.probe(head, filename) : 0
    if (score > bestScore) { best = f; bestScore = score }
  }
  return best?.name
}

export const PROBE_SIZE = 2048
