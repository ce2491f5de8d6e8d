// A long-lived qimg for tests: runs the real CLI entry point (main) once per
// request, in-process, capturing stdout, stderr and the exit code. Saves the
// Node and oclif start-up of a new process per comparison.
import { main } from '../../dist/src/cli/main.js'
import { captureOutput } from '../../dist/src/cli/output.js'

process.on('message', async ({ id, args, cwd }) => {
  let stdout = ''
  let stderr = ''
  const release = captureOutput({ out: (text) => { stdout += text }, err: (text) => { stderr += text } })
  process.exitCode = undefined
  const before = process.cwd()
  try {
    process.chdir(cwd)
    await main(args, 'qemu-img')
  } catch (e) {
    stderr += `worker: ${e?.stack ?? e}\n`
    process.exitCode = 1
  } finally {
    process.chdir(before)
    release()
  }
  const code = process.exitCode ?? 0
  process.exitCode = undefined
  process.send({ id, stdout, stderr, code })
})
