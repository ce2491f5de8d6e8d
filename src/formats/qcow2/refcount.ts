// Refcount entries: a refcount block is one cluster of entries of
// 2^refcount_order bits each. Entries narrower than a byte are packed from
// the least significant bit up; wider ones are big-endian.

/** Refcount of entry `index` in a refcount block. */
export function getRefcount (block: Buffer, index: number, order: number): number {
  switch (order) {
    case 0: return (block[index >> 3] >> (index & 7)) & 1
    case 1: return (block[index >> 2] >> ((index & 3) * 2)) & 3
    case 2: return (block[index >> 1] >> ((index & 1) * 4)) & 15
    case 3: return block[index]
    case 4: return block.readUInt16BE(index * 2)
    case 5: return block.readUInt32BE(index * 4)
    case 6: {
      const hi = block.readUInt32BE(index * 8)
      const lo = block.readUInt32BE(index * 8 + 4)
      // refcounts past 2^53 cannot be real; report them as the largest safe value
      return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + lo
    }
    default: throw new RangeError(`bad refcount order ${order}`)
  }
}

/** Largest refcount an entry of this width can hold. */
export function maxRefcount (order: number): number {
  return order >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (2 ** order) - 1
}

/** Store `value` (0..maxRefcount) in entry `index`. */
export function setRefcount (block: Buffer, index: number, order: number, value: number): void {
  switch (order) {
    case 0: case 1: case 2: {
      const bits = 1 << order
      const perByte = 8 >> order
      const shift = (index % perByte) * bits
      const mask = ((1 << bits) - 1) << shift
      const i = Math.floor(index / perByte)
      block[i] = (block[i] & ~mask) | ((value << shift) & mask)
      return
    }
    case 3: block[index] = value; return
    case 4: block.writeUInt16BE(value, index * 2); return
    case 5: block.writeUInt32BE(value, index * 4); return
    case 6:
      block.writeUInt32BE(Math.floor(value / 0x100000000), index * 8)
      block.writeUInt32BE(value >>> 0, index * 8 + 4)
      return
    default: throw new RangeError(`bad refcount order ${order}`)
  }
}

/** Entries per refcount block. */
export function refcountBlockEntries (clusterBits: number, order: number): number {
  return 2 ** (clusterBits + 3 - order)
}
