// The project's root directory (package.json, build/ with the native addon,
// dist/), found by walking up from this module. The code runs from three
// places at different depths: tsc's output (dist/src/...), the TypeScript
// sources under test (src/...), and the one-file bundle (dist/qimg.cjs).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let root: string | undefined

export function projectRoot (): string {
  if (root === undefined) {
    let dir = dirname(fileURLToPath(import.meta.url))
    while (!existsSync(join(dir, 'package.json'))) {
      const up = dirname(dir)
      if (up === dir) throw new Error('qimg: cannot find its package.json above ' + fileURLToPath(import.meta.url))
      dir = up
    }
    root = dir
  }
  return root
}
