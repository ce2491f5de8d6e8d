// printf conversions qemu's messages use, where JavaScript's defaults differ.

/** C's "%#x"/"%#" PRIx64: "0x" + hex digits, except plain "0" for zero. */
export function hexAlt (n: number): string {
  return n === 0 ? '0' : '0x' + n.toString(16)
}
