// raw creation: the image is the file itself, so creating one is creating
// the host file with the requested size and preallocation.
import { checkFileOptions, createFile, parseFilePreallocation } from '../../block/file-create.js'
import { isOn } from '../../cli/create-options.js'
import type { CreateContext, CreateOptionSpec } from '../../block/types.js'

/** raw's own -o options (the file protocol adds preallocation, nocow, extent_size_hint). */
export const RAW_CREATE_OPTIONS: CreateOptionSpec[] = [
  { name: 'size', type: 'size', help: 'Virtual disk size' },
]

export async function createRaw (filename: string, options: Record<string, string>, _ctx: CreateContext): Promise<void> {
  parseFilePreallocation(options.preallocation)
  checkFileOptions(options)
  await createFile(filename, { size: options.size ?? '0', preallocation: options.preallocation, nocow: isOn(options.nocow) })
}
