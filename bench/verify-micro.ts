// Microbenchmark: microseconds for one authenticate() call per scheme (GET, POST 1 KB, POST 1 MB).
// Bounded loops on one thread, no I/O; run `node dist/bench/verify-micro.js [--json]`.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import { createRfc9421Authenticator } from '../src/auth/rfc9421.js'
import { createWorkerV1Authenticator } from '../src/auth/worker-v1.js'
import type { AuthRequest, Authenticator } from '../src/auth/types.js'
import { signRfc9421, signWorkerV1 } from '../src/client/index.js'

const SECRET = 'bench-0123456789abcdef0123456789abcdef'
const HOST = 'gw.example:8080'
const workers = createWorkerV1Authenticator({ name: 'workers', secret: SECRET, windowMs: 300_000, roles: ['worker'] })
const signed = createRfc9421Authenticator({ name: 'signed', windowMs: 300_000, roles: ['worker'], keys: new Map([['worker-7', SECRET]]) })

function arrive(method: string, target: string, headers: Record<string, string>, body?: Buffer): AuthRequest {
  const all: Record<string, string> = { host: HOST, 'user-agent': 'bench', accept: '*/*', ...headers }
  if (body) all['content-length'] = String(body.length)
  const raw = { headers: all, rawHeaders: Object.entries(all).flat() } as unknown as IncomingMessage
  const at = target.indexOf('?')
  return { raw, method, path: at < 0 ? target : target.slice(0, at), query: at < 0 ? '' : target.slice(at), target, body, tls: false, now: Date.now() }
}

interface Case {
  name: string
  auth: Authenticator
  req: AuthRequest
  iterations: number
}

function cases(): Case[] {
  const out: Case[] = []
  const target = '/pools/1/tasks?limit=10'
  for (const [label, size, iterations] of [['GET', 0, 20_000], ['POST 1 KB', 1024, 20_000], ['POST 1 MB', 1 << 20, 200]] as const) {
    const body = size > 0 ? Buffer.alloc(size, 0x61) : undefined
    const method = size > 0 ? 'POST' : 'GET'
    out.push({ name: `worker-v1 ${label}`, auth: workers, req: arrive(method, target, { ...signWorkerV1({ id: 'worker-1', secret: SECRET }) }, body), iterations })
    const h = signRfc9421({ keyId: 'worker-7', secret: SECRET, method, url: `http://${HOST}${target}`, body })
    out.push({ name: `rfc9421 ${label}`, auth: signed, req: arrive(method, target, { ...h }, body), iterations })
  }
  return out
}

/** Best and median of several rounds: the machine may be shared, and the best round is the least disturbed. */
const ROUNDS = 5

async function measure(c: Case): Promise<{ name: string; iterations: number; bestUs: number; medianUs: number }> {
  for (let i = 0; i < Math.min(1000, c.iterations); i++) await c.auth.authenticate(c.req) // warm-up
  const first = await c.auth.authenticate(c.req)
  if (first.kind !== 'identity') throw new Error(`${c.name}: not accepted (${JSON.stringify(first)})`)
  const rounds: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now()
    for (let i = 0; i < c.iterations; i++) await c.auth.authenticate(c.req)
    rounds.push(((performance.now() - start) * 1000) / c.iterations)
  }
  rounds.sort((a, b) => a - b)
  return { name: c.name, iterations: c.iterations, bestUs: rounds[0] as number, medianUs: rounds[ROUNDS >> 1] as number }
}

const results = []
for (const c of cases()) results.push(await measure(c))
if (process.argv.includes('--json')) {
  process.stdout.write(JSON.stringify(results, null, 2) + '\n')
} else {
  process.stdout.write(`node ${process.version}, ${process.arch}; µs per authenticate(), best / median of ${ROUNDS} rounds\n`)
  for (const r of results) {
    process.stdout.write(`${r.name.padEnd(22)} ${r.bestUs.toFixed(1).padStart(9)} ${r.medianUs.toFixed(1).padStart(9)}   (${r.iterations} ops/round)\n`)
  }
}
