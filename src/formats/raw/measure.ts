// `measure -O raw`: a raw image is as large as its guest, however sparse.
import type { MeasureInput, MeasureResult } from '../../block/types.js'

export async function measureRaw (input: MeasureInput): Promise<MeasureResult> {
  return { required: input.size, fullyAllocated: input.size }
}
