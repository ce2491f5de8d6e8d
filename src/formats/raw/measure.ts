// `measure -O raw`: a raw image is as large as its guest (in whole
// sectors), however sparse.
import type { MeasureInput, MeasureResult } from '../../block/types.js'

export async function measureRaw (input: MeasureInput): Promise<MeasureResult> {
  const size = Math.ceil(input.size / 512) * 512
  return { required: size, fullyAllocated: size }
}
