// `npm run bench` (DESIGN §9): one fixed backend; on loopback, with one load generator (autocannon),
// the backend directly, a plain @fastify/http-proxy, and portcullis with bearer, api-key, worker-v1
// and rfc9421 (POST with a body) routes — rate limiting and audit logging on — in memory and redis
// mode. Prints req/s, p50, p99 and ratios to the plain proxy, and the CPU time the serving process
// spent per request (on a small machine the load generator, backend and proxy share the cores, so
// req/s measures all three; CPU per request isolates the proxy); writes bench/results.json.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, createHmac } from 'node:crypto'
import { mkdtempSync, writeFileSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { signRfc9421 } from '../src/client/index.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const children: ChildProcess[] = []
/** url → the process serving it, so each scenario can report that process's CPU time per request. */
const serving = new Map<string, number>()

/** User + system CPU time of a process in milliseconds (Linux /proc; undefined elsewhere). */
function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100)
  } catch {
    return undefined
  }
}

function start(args: string[], env: NodeJS.ProcessEnv = {}, logTo?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const out = logTo ? openSync(logTo, 'a') : 'ignore'
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', out] })
    children.push(child)
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`no listening line from ${args.join(' ')}`)), 15_000)
    const onData = (d: Buffer) => {
      buf += d
      const line = buf.split('\n').find((l) => l.includes('"listening"'))
      if (line) {
        clearTimeout(timer)
        // From here on the audit lines are written and discarded: the load generator must not parse them.
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        const url = String(JSON.parse(line).url)
        if (child.pid !== undefined) serving.set(url, child.pid)
        resolve(url)
      }
    }
    child.stdout!.on('data', onData)
  })
}

const secrets = {
  BENCH_TOKEN: randomBytes(32).toString('hex'),
  BENCH_KEY: randomBytes(32).toString('hex'),
  BENCH_WORKER_SECRET: randomBytes(32).toString('hex'),
  BENCH_SIGN_KEY: randomBytes(32).toString('hex'),
}

function config(upstream: string, store: 'memory' | 'redis'): string {
  return `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 1mb }
state:
  store: ${store}
  redis: { url: "${REDIS_URL}", prefix: "portcullis-bench:${randomBytes(4).toString('hex')}:" }
  onStoreError: deny
upstreams:
  backend: { url: ${upstream}, timeout: 10s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:BENCH_TOKEN}" }
  - { name: dashboard, roles: [ops], apiKey: "\${env:BENCH_KEY}" }
schemes:
  workers: { type: worker-v1, secret: "\${env:BENCH_WORKER_SECRET}", window: 5m, roles: [ops] }
  signed: { type: rfc9421, window: 60s, keys: { bench-1: "\${env:BENCH_SIGN_KEY}" }, roles: [ops] }
routes:
  - { path: /bearer, upstream: backend, auth: [bearer], roles: [ops] }
  - { path: /apikey, upstream: backend, auth: [apiKey], roles: [ops] }
  - { path: /worker, upstream: backend, auth: [workers], roles: [ops] }
  - { path: /signed, methods: [POST], upstream: backend, auth: [signed], roles: [ops] }
defaults:
  rateLimit: { max: 100000000, window: 1m, by: identity }
  authFailures: { max: 20, window: 1m }
`
}

interface Scenario {
  name: string
  url: string
  path: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  /** Re-sign every request (signed schemes refuse replays). */
  sign?: () => Record<string, string>
}

interface Result {
  name: string
  rps: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  /** CPU time the serving process spent per request, in microseconds. */
  cpuUsPerReq?: number
  rpsRatio?: number
  p50Ratio?: number
  p99Ratio?: number
}

async function measure(s: Scenario): Promise<Result> {
  await load(s, WARMUP_SECONDS) // untimed: JIT and connection pools warm before the figures are taken
  const pid = serving.get(s.url)
  const cpuBefore = cpuMs(pid)
  const r = await load(s, SECONDS)
  const cpuAfter = cpuMs(pid)
  const total = r.requests.total as number
  const cpu = cpuBefore !== undefined && cpuAfter !== undefined && total > 0 ? Math.round(((cpuAfter - cpuBefore) * 1000) / total) : undefined
  return { name: s.name, rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts, ...(cpu !== undefined ? { cpuUsPerReq: cpu } : {}) }
}

function load(s: Scenario, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: s.url + s.path,
    connections: CONNECTIONS,
    duration: seconds,
    method: s.method ?? 'GET',
    headers: s.headers ?? {},
    ...(s.body !== undefined ? { body: s.body } : {}),
    ...(s.sign
      ? {
          requests: [
            {
              method: s.method ?? 'GET',
              path: s.path,
              ...(s.body !== undefined ? { body: s.body } : {}),
              setupRequest: (req: Record<string, unknown>) => ({ ...req, headers: { ...(s.headers ?? {}), ...s.sign!() } }),
            },
          ],
        }
      : {}),
  } as autocannon.Options)
}

let workerCounter = 0
function workerHeaders(): Record<string, string> {
  const id = `w${workerCounter++ % 1000}`
  const ts = String(Date.now())
  return { 'x-worker-id': id, 'x-worker-timestamp': ts, 'x-worker-signature': createHmac('sha256', secrets.BENCH_WORKER_SECRET).update(`${id}:${ts}`).digest('hex') }
}

async function main(): Promise<void> {
  const logDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'))
  const backend = await start([join(HERE, 'backend.js')])
  const plain = await start([join(HERE, 'plain-proxy.js'), backend])
  const scenarios: Scenario[] = [
    { name: 'backend direct', url: backend, path: '/bearer' },
    { name: 'plain @fastify/http-proxy', url: plain, path: '/bearer' },
  ]
  const body = JSON.stringify({ model: 'bench', payload: 'x'.repeat(1000) })
  for (const store of ['memory', 'redis'] as const) {
    const file = join(logDir, `gateway-${store}.yaml`)
    writeFileSync(file, config(backend, store))
    const gw = await start([join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--config', file], secrets, join(logDir, `audit-${store}.log`))
    scenarios.push(
      { name: `portcullis ${store} bearer`, url: gw, path: '/bearer', headers: { authorization: `Bearer ${secrets.BENCH_TOKEN}` } },
      { name: `portcullis ${store} api-key`, url: gw, path: '/apikey', headers: { 'x-api-key': secrets.BENCH_KEY } },
      { name: `portcullis ${store} worker-v1`, url: gw, path: '/worker', sign: workerHeaders },
      {
        name: `portcullis ${store} rfc9421 POST 1KB`,
        url: gw,
        path: '/signed',
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        sign: () => ({ ...signRfc9421({ keyId: 'bench-1', secret: secrets.BENCH_SIGN_KEY, method: 'POST', url: gw + '/signed', body }) }) as Record<string, string>,
      },
    )
  }
  const results: Result[] = []
  for (const s of scenarios) {
    results.push(await measure(s))
    process.stderr.write(`measured ${s.name}\n`)
  }
  const base = results.find((r) => r.name.startsWith('plain'))!
  for (const r of results) {
    r.rpsRatio = Math.round((r.rps / base.rps) * 100) / 100
    r.p50Ratio = base.p50 ? Math.round((r.p50 / base.p50) * 100) / 100 : 0
    r.p99Ratio = base.p99 ? Math.round((r.p99 / base.p99) * 100) / 100 : 0
  }
  const rows = [['scenario', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'cpu µs/req', 'req/s vs plain', 'p50 vs plain', 'p99 vs plain']]
  for (const r of results) rows.push([r.name, String(r.rps), String(r.p50), String(r.p99), String(r.non2xx), String(r.errors), String(r.cpuUsPerReq ?? '-'), `${r.rpsRatio}x`, `${r.p50Ratio}x`, `${r.p99Ratio}x`])
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  for (const row of rows) process.stdout.write(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ') + '\n')
  const outFile = join(ROOT, 'bench', 'results.json')
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), node: process.version, seconds: SECONDS, connections: CONNECTIONS, results }, null, 2) + '\n')
  process.stdout.write(`\nwritten ${outFile}; audit logs in ${logDir}\n`)
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).message}\n`)
    process.exitCode = 1
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM')
  })
