// Crash tests: run a TypeScript child that prints one line per finished
// operation, and SIGKILL it once it has printed `lines` lines (no timers:
// the kill lands wherever the child is at that moment).
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const TSX = require.resolve('tsx')

/** Resolves with the number of lines the child printed before it died. */
export function runAndKill (child: string, args: string[], lines: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', TSX, child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let seen = 0
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => {
      seen += d.toString().split('\n').length - 1
      if (seen >= lines && p.exitCode === null) p.kill('SIGKILL')
    })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${stderr}`))
      else resolve(seen)
    })
  })
}
