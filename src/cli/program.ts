// The name the program was invoked as: "qimg" from bin/run.js, "qemu-img"
// from bin/qemu-img.js, so messages read exactly like the tool scripts expect.
let name = 'qimg'

export function setProgramName (n: string): void { name = n }
export function programName (): string { return name }

/** The version we report: qemu-img's version we match, and our own. */
export const QEMU_VERSION = '7.2.22'
export const QIMG_VERSION = '0.1.0'
