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

/** One --once run shared by the tests below: the demo takes seconds and the machine is shared. */
let tour: Promise<{ code: number | null; out: string }> | undefined
const runOnce = () => (tour ??= runDemo(['--once'], { PORTCULLIS_DEMO_PORTS: 'auto' }))

t.test('demo --once passes every step and exits 0', async (t) => {
  const { code, out } = await runOnce()
  t.equal(code, 0, out)
  const m = /(\d+)\/(\d+) steps got the status they expected/.exec(out)
  t.ok(m, 'prints the summary line')
  t.equal(m?.[1], m?.[2], 'every step as expected')
  t.notMatch(out, /FAIL/)
  for (const code of ['MISSING_CREDENTIALS', 'FORBIDDEN', 'NO_ROUTE', 'BAD_PATH', 'REPLAYED', 'DIGEST_MISMATCH', 'KEY_REVOKED', 'RATE_LIMITED']) t.match(out, code)
  // Scheme identities are `<scheme>:<subject>` (DESIGN §3.3).
  t.match(out, /worker-v1 heartbeat \(worker-1\)\s+200\s+200\s+workers:worker-1 via workers/)
  t.match(out, /rfc9421 POST \/pools\/p1\/preload \(worker-7\)\s+200\s+200\s+signed:worker-7 via signed/)
})

t.test('demo --once shows the UCAN step: delegated invocation 200, replay 401, another command 403', async (t) => {
  const { code, out } = await runOnce()
  t.equal(code, 0, out)
  t.match(out, /UCAN: worker invokes \/pool\/preload \(delegated by the root\)\s+200\s+200\s+cluster:did:key:z6Mk\S+ via cluster\s+ok/)
  t.match(out, /UCAN: the same invocation replayed\s+401\s+401\s+REPLAYED\s+ok/)
  t.match(out, /UCAN: \/pool\/preload invocation on the \/pool\/drain route\s+403\s+403\s+FORBIDDEN\s+ok/)
})

t.test('demo --once shows the report-only step: forwarded without credentials, and the report says not ready', async (t) => {
  const { code, out } = await runOnce()
  t.equal(code, 0, out)
  t.match(out, /report-only \/legacy\/: no credential, forwarded anyway\s+200\s+200\s+forwarded, no identity\s+ok/)
  t.match(out, /portcullis report: verdict for \/legacy\/\s+not ready\s+not ready\s+enforce report; would refuse MISSING_CREDENTIALS x1\s+ok/)
})

t.test('demo --once --redis: a request accepted by one replica is a replay at the other', { skip: redisSkip }, async (t) => {
  const { code, out } = await runDemo(['--once', '--redis'])
  t.equal(code, 0, out)
  t.match(out, /replica B .* the same request\s+401\s+401\s+REPLAYED/)
})
