// A long-lived qimg for tests: runs the real CLI entry point (main) once per
// request, in-process, capturing stdout, stderr and the exit code. Saves the
// Node and oclif start-up of a new process per comparison.
import { main } from '../../dist/src/cli/main.js'

const realOut = process.stdout.write.bind(process.stdout)
const realErr = process.stderr.write.bind(process.stderr)

process.on('message', async ({ id, args, cwd }) => {
  let stdout = ''
  let stderr = ''
  process.stdout.write = (chunk) => { stdout += chunk; return true }
  process.stderr.write = (chunk) => { stderr += chunk; return true }
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
    process.stdout.write = realOut
    process.stderr.write = realErr
  }
  const code = process.exitCode ?? 0
  process.exitCode = undefined
  process.send({ id, stdout, stderr, code })
})
