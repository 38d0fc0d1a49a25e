// `npm run demo -- --once` must tour every step with the expected status and exit 0.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { redisSkip } from '../redis-env.js'

const DEMO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'demo', 'main.js')

/** Runs the demo to completion (killed after 60 s) and returns its exit code and output. */
async function runDemo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [DEMO, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((r) => child.on('close', r))
  clearTimeout(timer)
  return { code, out }
}

t.test('demo --once passes every step and exits 0', async (t) => {
  const { code, out } = await runDemo(['--once'], { PORTCULLIS_DEMO_PORTS: 'auto' })
  t.equal(code, 0, out)
  const m = /(\d+)\/(\d+) steps got the status they expected/.exec(out)
  t.ok(m, 'prints the summary line')
  t.equal(m?.[1], m?.[2], 'every step as expected')
  t.notMatch(out, /FAIL/)
  for (const code of ['MISSING_CREDENTIALS', 'FORBIDDEN', 'NO_ROUTE', 'BAD_PATH', 'REPLAYED', 'DIGEST_MISMATCH', 'KEY_REVOKED', 'RATE_LIMITED']) t.match(out, code)
})

t.test('demo --once --redis: a request accepted by one replica is a replay at the other', { skip: redisSkip }, async (t) => {
  const { code, out } = await runDemo(['--once', '--redis'])
  t.equal(code, 0, out)
  t.match(out, /replica B .* the same request\s+401\s+401\s+REPLAYED/)
})
