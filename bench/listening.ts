// Starting a bench process that announces itself with a JSON `"listening"` line on stdout (the backend,
// the proxies, the gateway): shared by bench/in-situ.ts and bench/instructions.ts.
import { spawn, type ChildProcess } from 'node:child_process'

/** How much of a process's stderr is kept for error messages: its last lines, never an unbounded buffer. */
const STDERR_KEPT = 64_000

/**
 * Spawns `cmd args` (added to `children` at once, so an exit handler can kill it even before it listens) and
 * resolves with its URL once it says it listens; from then on its stdout (the audit lines) is read and
 * dropped, and its stderr is drained throughout so neither pipe fills and stalls it. Rejects when it exits
 * first or says nothing within `ms`.
 */
export function startListening(
  children: ChildProcess[],
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ms: number,
): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stderr!.on('data', (d) => (err = (err + d).slice(-STDERR_KEPT)))
    const fail = (why: string) => reject(new Error(`${why} from ${[cmd, ...args].join(' ')}: ${err.trim()}`))
    const timer = setTimeout(() => fail(`no listening line in ${ms / 1000} s`), ms)
    child.once('exit', () => (clearTimeout(timer), fail('exited before listening')))
    const onData = (d: Buffer) => {
      out += d
      const line = out.split('\n').find((l) => l.includes('"listening"'))
      if (!line) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stdout!.resume()
      resolve({ child, url: String(JSON.parse(line).url), stderr: () => err })
    }
    child.stdout!.on('data', onData)
  })
}
