// The commands, by name, each imported only when it runs. The table is
// static (not read from oclif.manifest.json at run time) so that the
// one-file bundle (scripts/bundle.mjs) can follow every import; a test keeps
// it equal to the manifest that `oclif manifest` writes from commands/.
export interface CommandClass { run(argv: string[]): Promise<void> }
type Loader = () => Promise<{ default: CommandClass }>

export const COMMANDS: Record<string, Loader> = {
  amend: () => import('../../commands/amend.js'),
  bench: () => import('../../commands/bench.js'),
  bitmap: () => import('../../commands/bitmap.js'),
  check: () => import('../../commands/check.js'),
  commit: () => import('../../commands/commit.js'),
  compare: () => import('../../commands/compare.js'),
  convert: () => import('../../commands/convert.js'),
  create: () => import('../../commands/create.js'),
  dd: () => import('../../commands/dd.js'),
  info: () => import('../../commands/info.js'),
  map: () => import('../../commands/map.js'),
  measure: () => import('../../commands/measure.js'),
  mount: () => import('../../commands/mount.js'),
  rebase: () => import('../../commands/rebase.js'),
  resize: () => import('../../commands/resize.js'),
  snapshot: () => import('../../commands/snapshot.js'),
  umount: () => import('../../commands/umount.js'),
}
