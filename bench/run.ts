// `npm run bench` (DESIGN §9): one fixed backend; on loopback, the backend directly, a plain
// @fastify/http-proxy, a minimal node:http + undici Pool proxy (the Node ceiling) and the same handler
// behind a Fastify catch-all route (what Fastify costs), then portcullis on a public route and with
// bearer, api-key, worker-v1, rfc9421 (GET, POST 1 KB) and ucan routes — rate limiting, metrics and the
// audit log on — in memory and redis mode, with 1 route × 1 identity per method and with 100 routes ×
// 1000 identities. The load generator is autocannon in a child process of its own (bench/load.ts), so it
// never shares an event loop with what is measured. Per scenario: req/s, p50/p99 µs, the serving process's
// CPU µs per request and peak RSS, each as a ratio to the plain proxy; bench/results.json; and the memory
// held by 1 M replay-cache entries. `--quick`: a short subset. `BENCH_CPU_PROF=DIR`: gateways run with
// --cpu-prof into DIR. `--only REGEX`: only matching scenarios (plus the plain proxy the ratios need).
// `--repeat N`: every scenario N times, interleaved; each figure is the median of its N runs.
// `--pairs`: each goal's two sides measured at the same moment, round after round (see pairs()).
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { randomBytes, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ucanDelegate, ucanDid, ucanInvocation } from '../src/client/ucan.js'
import type { LoadSpec } from './load.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const QUICK = process.argv.includes('--quick')
const onlyAt = process.argv.indexOf('--only')
const ONLY = onlyAt > 0 ? new RegExp(process.argv[onlyAt + 1]!) : undefined
const repeatAt = process.argv.indexOf('--repeat')
const REPEAT = repeatAt > 0 ? Math.max(1, Math.min(9, Number(process.argv[repeatAt + 1]) || 1)) : 1
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 2 : 5))
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? (QUICK ? 1 : 2))
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const CPU_PROF = process.env.BENCH_CPU_PROF
const PAIRS = process.argv.includes('--pairs')
const execFileP = promisify(execFile)

const children: ChildProcess[] = []
/** url → the process serving it, so each scenario can report that process's CPU time and peak RSS. */
const serving = new Map<string, number>()
const logDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'))

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

/** Reset the peak RSS of a process (Linux: writing 5 to clear_refs), so each scenario reports its own. */
function resetPeakRss(pid: number | undefined): void {
  if (pid === undefined) return
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
  } catch {
    // not Linux or not permitted: the peak then covers the process's life so far
  }
}

function peakRssKb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : undefined
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
        // From here on the audit lines are written and discarded.
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
const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) => k.export({ format: 'pem', type: 'pkcs8' }) as string
const ucanRoot = pem(generateKeyPairSync('ed25519').privateKey)
const ucanWorker = pem(generateKeyPairSync('ed25519').privateKey)
const UCAN_ROOT = ucanDid(ucanRoot)
const ucanProof = ucanDelegate({ key: ucanRoot, aud: ucanDid(ucanWorker), sub: UCAN_ROOT, cmd: '/bench', ttlS: 3600 })

const IDENTITIES = 1000
const ROUTES = 100
const many = Array.from({ length: IDENTITIES }, (_, i) => ({ token: `t${i}-${randomBytes(24).toString('hex')}`, key: `k${i}-${randomBytes(24).toString('hex')}` }))
/** Secrets come from the environment, as the config requires. */
const manyEnv = Object.fromEntries(many.flatMap((m, i) => [[`BENCH_T${i}`, m.token], [`BENCH_K${i}`, m.key]]))

function config(upstream: string, store: 'memory' | 'redis', large: boolean): string {
  const routes = large
    ? // 100 routes, half static and half with a parameter, then the scenario routes last (the worst
      // place for a linear scan); the load rotates over the 100 and over all 1000 identities.
      Array.from({ length: ROUTES }, (_, i) => (i % 2 ? `  - { path: /svc${i}, upstream: backend, auth: [bearer, apiKey], roles: [ops] }` : `  - { path: /svc${i}/items/:id, upstream: backend, auth: [bearer, apiKey], roles: [ops] }`)).join('\n') + '\n'
    : ''
  const identities = large ? many.map((m, i) => `  - { name: id${i}, roles: [ops], bearer: "\${env:BENCH_T${i}}", apiKey: "\${env:BENCH_K${i}}" }`).join('\n') + '\n' : ''
  return `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 1mb }
admin: { listen: 127.0.0.1:0 }
state:
  store: ${store}
  redis: { url: "${REDIS_URL}", prefix: "portcullis-bench:${randomBytes(4).toString('hex')}:" }
  onStoreError: deny
upstreams:
  backend: { url: ${upstream}, timeout: 10s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:BENCH_TOKEN}" }
  - { name: dashboard, roles: [ops], apiKey: "\${env:BENCH_KEY}" }
${identities}schemes:
  workers: { type: worker-v1, secret: "\${env:BENCH_WORKER_SECRET}", window: 5m, roles: [ops] }
  signed: { type: rfc9421, window: 60s, keys: { bench-1: "\${env:BENCH_SIGN_KEY}" }, roles: [ops] }
  cluster: { type: ucan, subjects: ["${UCAN_ROOT}"], window: 5m, roles: [ops] }
routes:
${routes}  - { path: /public, upstream: backend, public: true }
  - { path: /bearer, upstream: backend, auth: [bearer], roles: [ops] }
  - { path: /apikey, upstream: backend, auth: [apiKey], roles: [ops] }
  - { path: /worker, upstream: backend, auth: [workers], roles: [ops] }
  - { path: /signed, upstream: backend, auth: [signed], roles: [ops] }
  - { path: /ucan, methods: [GET], upstream: backend, auth: [cluster], command: /bench, roles: [ops] }
defaults:
  rateLimit: { max: 100000000, window: 1m, by: identity }
  authFailures: { max: 20, window: 1m }
`
}

type Spec = Omit<LoadSpec, 'connections' | 'seconds' | 'pool'>
interface Scenario {
  name: string
  spec: Spec
  /** Pre-mint this many header sets per second of load (ucan: each invocation is accepted once). */
  mint?: () => Record<string, string>
}

interface Result {
  name: string
  rps: number
  p50Us: number
  p99Us: number
  non2xx: number
  errors: number
  /** CPU time the serving process spent per request, in microseconds. */
  cpuUsPerReq?: number
  peakRssMb?: number
  rpsRatio?: number
  p50Ratio?: number
  p99Ratio?: number
  cpuRatio?: number
  rssRatio?: number
}

interface LoadOut { total: number; rps: number; p50Us: number; p99Us: number; non2xx: number; errors: number }

async function load(spec: LoadSpec): Promise<LoadOut> {
  const file = join(logDir, `spec-${randomBytes(4).toString('hex')}.json`)
  writeFileSync(file, JSON.stringify(spec))
  const { stdout } = await execFileP(process.execPath, [join(HERE, 'load.js'), file], { maxBuffer: 1 << 24, timeout: (spec.seconds + 60) * 1000 })
  return JSON.parse(stdout.trim().split('\n').pop()!) as LoadOut
}

/** Invocations for one phase, minted before it starts (in this process, not in the measured one). */
function mintPool(s: Scenario, seconds: number): string | undefined {
  if (!s.mint) return undefined
  const count = Math.ceil(seconds * Number(process.env.BENCH_UCAN_RATE ?? 6000))
  const file = join(logDir, `pool-${randomBytes(4).toString('hex')}.jsonl`)
  const lines: string[] = []
  for (let i = 0; i < count; i++) lines.push(JSON.stringify(s.mint()))
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

/**
 * Processes already warmed: a fresh one (JIT, heap growth, pools) measured ~2x its warm CPU per request,
 * and after 6 s of warm-up the first scenario on the 100 × 1000 gateway still cost 1.5x the same
 * scenario in a later round (83 vs 57 µs): a fresh process warms for 12 s.
 */
const warmed = new Set<string>()
const FIRST_WARMUP_SECONDS = Number(process.env.BENCH_FIRST_WARMUP_SECONDS ?? (QUICK ? 2 : 10))

async function measure(s: Scenario): Promise<Result> {
  const common = { connections: CONNECTIONS }
  const warmSeconds = WARMUP_SECONDS + (warmed.has(s.spec.url) ? 0 : FIRST_WARMUP_SECONDS)
  warmed.add(s.spec.url)
  const warmPool = mintPool(s, warmSeconds)
  // untimed: JIT and connection pools warm before the figures are taken
  await load({ ...s.spec, ...common, seconds: warmSeconds, ...(warmPool ? { pool: warmPool } : {}) })
  const pool = mintPool(s, SECONDS)
  const pid = serving.get(s.spec.url)
  resetPeakRss(pid)
  const cpuBefore = cpuMs(pid)
  const r = await load({ ...s.spec, ...common, seconds: SECONDS, ...(pool ? { pool } : {}) })
  const cpuAfter = cpuMs(pid)
  const rss = peakRssKb(pid)
  const cpu = cpuBefore !== undefined && cpuAfter !== undefined && r.total > 0 ? Math.round(((cpuAfter - cpuBefore) * 1000) / r.total) : undefined
  return {
    name: s.name,
    rps: Math.round(r.rps),
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    non2xx: r.non2xx,
    errors: r.errors,
    ...(cpu !== undefined ? { cpuUsPerReq: cpu } : {}),
    ...(rss !== undefined ? { peakRssMb: Math.round(rss / 102.4) / 10 } : {}),
  }
}

/** Each figure of a scenario's runs: its median (for an even count, the lower middle). */
function medianResult(runs: Result[]): Result {
  const mid = <T extends number | undefined>(values: T[]): T => {
    const known = values.filter((v): v is NonNullable<T> => v !== undefined).sort((a, b) => (a as number) - (b as number))
    return (known.length ? known[Math.floor((known.length - 1) / 2)] : undefined) as T
  }
  const first = runs[0]!
  const cpu = mid(runs.map((r) => r.cpuUsPerReq))
  const rss = mid(runs.map((r) => r.peakRssMb))
  return {
    name: first.name,
    rps: mid(runs.map((r) => r.rps)),
    p50Us: mid(runs.map((r) => r.p50Us)),
    p99Us: mid(runs.map((r) => r.p99Us)),
    non2xx: Math.max(...runs.map((r) => r.non2xx)),
    errors: Math.max(...runs.map((r) => r.errors)),
    ...(cpu !== undefined ? { cpuUsPerReq: cpu } : {}),
    ...(rss !== undefined ? { peakRssMb: rss } : {}),
  }
}

async function replayMemory(): Promise<Record<string, number> | undefined> {
  try {
    const { stdout } = await execFileP(process.execPath, ['--expose-gc', join(HERE, 'replay-memory.js'), '1000000'], { timeout: 180_000 })
    return JSON.parse(stdout.trim()) as Record<string, number>
  } catch (err) {
    process.stderr.write(`replay memory: ${(err as Error).message}\n`)
    return undefined
  }
}

async function gateway(backend: string, store: 'memory' | 'redis', large: boolean, twin = false): Promise<string> {
  const tag = `${store}${large ? '-large' : ''}${twin ? '-twin' : ''}`
  const file = join(logDir, `gateway-${tag}.yaml`)
  writeFileSync(file, config(backend, store, large))
  const prof = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF, '--cpu-prof-name', `gateway-${tag}.cpuprofile`] : []
  return start([...prof, join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--config', file], { ...secrets, ...(large ? manyEnv : {}) }, join(logDir, `audit-${tag}.log`))
}

async function main(): Promise<void> {
  const backend = await start([join(HERE, 'backend.js')])
  const plain = await start([join(HERE, 'plain-proxy.js'), backend])
  const nodeProxy = await start([join(HERE, 'node-proxy.js'), backend])
  const fastifyProxy = await start([join(HERE, 'node-proxy.js'), backend, '--fastify'])
  const scenarios: Scenario[] = [
    { name: 'backend direct', spec: { url: backend, path: '/bearer' } },
    { name: 'plain @fastify/http-proxy', spec: { url: plain, path: '/bearer' } },
    { name: 'node http + undici Pool', spec: { url: nodeProxy, path: '/bearer' } },
    { name: 'same handler in Fastify (hijack)', spec: { url: fastifyProxy, path: '/bearer' } },
  ]
  const body = JSON.stringify({ model: 'bench', payload: 'x'.repeat(1000) })
  // What a 1 KB body costs a proxy by itself: the ceiling's POST, beside the gateway's bearer POST below.
  scenarios.push({ name: 'node http + undici Pool, POST 1KB', spec: { url: nodeProxy, path: '/bearer', method: 'POST', body, headers: { 'content-type': 'application/json' } } })
  const sign = { kind: 'rfc9421' as const, keyId: 'bench-1', secret: secrets.BENCH_SIGN_KEY }
  const bearer = { authorization: `Bearer ${secrets.BENCH_TOKEN}` }
  for (const store of ['memory', 'redis'] as const) {
    const gw = await gateway(backend, store, false)
    const p = `portcullis ${store}`
    scenarios.push(
      { name: `${p} public`, spec: { url: gw, path: '/public' } },
      { name: `${p} bearer`, spec: { url: gw, path: '/bearer', headers: bearer } },
      // control for rfc9421 POST: the same body behind a bearer token, so the signature's own cost shows
      { name: `${p} bearer POST 1KB`, spec: { url: gw, path: '/bearer', method: 'POST', body, headers: { ...bearer, 'content-type': 'application/json' } } },
      // control for 100r×1000i: the same request, but built per request by the load generator as the rotating scenarios are
      { name: `${p} bearer, per-request build`, spec: { url: gw, path: '/bearer', rotate: { paths: ['/bearer'], headers: [bearer] } } },
      { name: `${p} api-key`, spec: { url: gw, path: '/apikey', headers: { 'x-api-key': secrets.BENCH_KEY } } },
      { name: `${p} worker-v1`, spec: { url: gw, path: '/worker', sign: { kind: 'worker-v1', secret: secrets.BENCH_WORKER_SECRET } } },
      { name: `${p} rfc9421 GET`, spec: { url: gw, path: '/signed', sign } },
      { name: `${p} rfc9421 POST 1KB`, spec: { url: gw, path: '/signed', method: 'POST', body, headers: { 'content-type': 'application/json' }, sign } },
      { name: `${p} ucan`, spec: { url: gw, path: '/ucan' }, mint: () => ucanInvocation({ key: ucanWorker, sub: UCAN_ROOT, cmd: '/bench', proofs: [ucanProof], method: 'GET', target: '/ucan', ttlS: 300 }) },
    )
  }
  const paths = Array.from({ length: ROUTES }, (_, i) => (i % 2 ? `/svc${i}` : `/svc${i}/items/${i}`))
  for (const store of ['memory', 'redis'] as const) {
    const gw = await gateway(backend, store, true)
    const p = `portcullis ${store} 100r×1000i`
    scenarios.push(
      { name: `${p} bearer`, spec: { url: gw, path: paths[0]!, rotate: { paths, headers: many.map((m) => ({ authorization: `Bearer ${m.token}` })) } } },
      { name: `${p} api-key`, spec: { url: gw, path: paths[0]!, rotate: { paths, headers: many.map((m) => ({ 'x-api-key': m.key })) } } },
      { name: `${p} public`, spec: { url: gw, path: '/public' } },
    )
  }
  if (PAIRS) return pairs(scenarios, await gateway(backend, 'memory', false, true))
  const quickSet = /^(backend direct|plain .*|node http .*|same handler .*|portcullis memory (public|bearer|bearer, per-request build|bearer POST 1KB|rfc9421 POST 1KB|ucan)|portcullis redis bearer|portcullis memory 100r×1000i bearer)$/
  const chosen = scenarios.filter((s) => s.name.startsWith('plain') || (ONLY ? ONLY.test(s.name) : !QUICK || quickSet.test(s.name)))
  // --repeat N: the whole list N times over, interleaved, and each figure the median of its N (a noisy
  // host moves single runs by more than the goals' margins; interleaving spreads its moods over all).
  const rounds: Result[][] = chosen.map(() => [])
  for (let round = 1; round <= REPEAT; round++) {
    for (const [i, s] of chosen.entries()) {
      rounds[i]!.push(await measure(s))
      process.stderr.write(`measured ${s.name}${REPEAT > 1 ? ` (${round}/${REPEAT})` : ''}\n`)
    }
  }
  const results = rounds.map(medianResult)
  const base = results.find((r) => r.name.startsWith('plain'))!
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? Math.round((a / b) * 100) / 100 : undefined)
  for (const r of results) {
    r.rpsRatio = ratio(r.rps, base.rps)
    r.p50Ratio = ratio(r.p50Us, base.p50Us)
    r.p99Ratio = ratio(r.p99Us, base.p99Us)
    r.cpuRatio = ratio(r.cpuUsPerReq, base.cpuUsPerReq)
    r.rssRatio = ratio(r.peakRssMb, base.peakRssMb)
  }
  const rows = [['scenario', 'req/s', 'p50 µs', 'p99 µs', 'CPU µs/req', 'peak RSS MB', 'non-2xx', 'errors', 'req/s ÷ plain', 'p50 ÷', 'p99 ÷', 'CPU ÷', 'RSS ÷']]
  const x = (v: number | undefined) => (v === undefined ? '-' : `${v}x`)
  for (const r of results) rows.push([r.name, String(r.rps), String(r.p50Us), String(r.p99Us), String(r.cpuUsPerReq ?? '-'), String(r.peakRssMb ?? '-'), String(r.non2xx), String(r.errors), x(r.rpsRatio), x(r.p50Ratio), x(r.p99Ratio), x(r.cpuRatio), x(r.rssRatio)])
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  for (const row of rows) process.stdout.write(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ') + '\n')

  // The issue-12 figures, where this run has both sides.
  const get = (name: string) => results.find((r) => r.name === name)
  const goals: Record<string, number | undefined> = {
    'bearer ÷ plain (req/s)': ratio(get('portcullis memory bearer')?.rps, base.rps),
    'bearer ÷ node ceiling (req/s)': ratio(get('portcullis memory bearer')?.rps, get('node http + undici Pool')?.rps),
    'bearer ÷ node ceiling (CPU/req, inverse)': ratio(get('node http + undici Pool')?.cpuUsPerReq, get('portcullis memory bearer')?.cpuUsPerReq),
    'rfc9421 POST 1KB ÷ bearer (req/s)': ratio(get('portcullis memory rfc9421 POST 1KB')?.rps, get('portcullis memory bearer')?.rps),
    'rfc9421 POST 1KB ÷ bearer POST 1KB (req/s)': ratio(get('portcullis memory rfc9421 POST 1KB')?.rps, get('portcullis memory bearer POST 1KB')?.rps),
    'node ceiling POST 1KB ÷ its GET (req/s)': ratio(get('node http + undici Pool, POST 1KB')?.rps, get('node http + undici Pool')?.rps),
    'bearer POST 1KB ÷ node ceiling POST 1KB (req/s)': ratio(get('portcullis memory bearer POST 1KB')?.rps, get('node http + undici Pool, POST 1KB')?.rps),
    'redis ÷ memory, bearer (req/s)': ratio(get('portcullis redis bearer')?.rps, get('portcullis memory bearer')?.rps),
    'CPU/req 100r×1000i ÷ 1r×1i, bearer': ratio(get('portcullis memory 100r×1000i bearer')?.cpuUsPerReq, get('portcullis memory bearer')?.cpuUsPerReq),
    'bearer p99 ÷ plain p99': ratio(get('portcullis memory bearer')?.p99Us, base.p99Us),
    'Fastify hijack ÷ node:http (CPU/req)': ratio(get('same handler in Fastify (hijack)')?.cpuUsPerReq, get('node http + undici Pool')?.cpuUsPerReq),
  }
  process.stdout.write('\n')
  for (const [k, v] of Object.entries(goals)) if (v !== undefined) process.stdout.write(`${k}: ${v}\n`)
  const fastify = get('same handler in Fastify (hijack)')
  const nodeHttp = get('node http + undici Pool')
  if (fastify?.cpuUsPerReq !== undefined && nodeHttp?.cpuUsPerReq !== undefined) process.stdout.write(`Fastify's own cost, same handler: ${fastify.cpuUsPerReq - nodeHttp.cpuUsPerReq} CPU µs per request\n`)
  const replay = await replayMemory()
  if (replay) process.stdout.write(`memory replay cache, ${replay.entries} entries: ${replay.mb} MB held (${replay.insertNsPerEntry} ns per insert)\n`)
  const outFile = join(ROOT, 'bench', 'results.json')
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), node: process.version, quick: QUICK, repeat: REPEAT, loadGenerator: 'autocannon 9, child process', seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, connections: CONNECTIONS, results, goals, replayCache: replay }, null, 2) + '\n')
  process.stdout.write(`\nwritten ${outFile}; audit logs in ${logDir}\n`)
}

/**
 * `--pairs`: each goal's two sides loaded **at the same moment** — two serving processes, one load process
 * each — round after round (`--repeat`, default 5), and each ratio the median of its rounds. Both sides
 * then share whatever the host is doing, which moves sequential runs by more than the goals' margins. Each
 * side gets about half the machine, so absolute figures are lower than in the table; the ratios are what
 * this is for. A side on the same gateway as the other runs on a second, identical gateway.
 */
async function pairs(scenarios: Scenario[], twin: string): Promise<void> {
  const named = (name: string): Scenario => scenarios.find((s) => s.name === name)!
  const onTwin = (s: Scenario): Scenario => ({ ...s, name: `${s.name} (second gateway)`, spec: { ...s.spec, url: twin } })
  const list: [string, Scenario, Scenario][] = [
    ['bearer ÷ node ceiling', named('node http + undici Pool'), named('portcullis memory bearer')],
    ['bearer ÷ plain @fastify/http-proxy', named('plain @fastify/http-proxy'), named('portcullis memory bearer')],
    ['rfc9421 POST 1KB ÷ bearer', onTwin(named('portcullis memory bearer')), named('portcullis memory rfc9421 POST 1KB')],
    ['rfc9421 POST 1KB ÷ bearer POST 1KB', onTwin(named('portcullis memory bearer POST 1KB')), named('portcullis memory rfc9421 POST 1KB')],
    ['redis ÷ memory, bearer', named('portcullis memory bearer'), named('portcullis redis bearer')],
    ['100r×1000i ÷ 1r×1i, bearer', named('portcullis memory bearer'), named('portcullis memory 100r×1000i bearer')],
  ]
  const rounds = repeatAt > 0 ? REPEAT : 5
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!
  const out: Record<string, { rps: number; cpuInverse: number; p99: number; rounds: { a: Result; b: Result }[] }> = {}
  for (const [label, a, b] of list) {
    if (ONLY && !ONLY.test(label)) continue
    // A fresh process warms longer than a warm one (measure()): both sides warm together first, so that
    // neither is measured while the other is still warming.
    const fresh = [a, b].filter((s) => !warmed.has(s.spec.url))
    if (fresh.length > 0) {
      await Promise.all([a, b].map((s) => load({ ...s.spec, connections: CONNECTIONS, seconds: FIRST_WARMUP_SECONDS })))
      for (const s of [a, b]) warmed.add(s.spec.url)
    }
    const runs: { a: Result; b: Result }[] = []
    for (let round = 1; round <= rounds; round++) {
      const [ra, rb] = await Promise.all([measure(a), measure(b)])
      runs.push({ a: ra, b: rb })
      process.stderr.write(`${label} (${round}/${rounds}): ${b.name} ${rb.rps} req/s ${rb.cpuUsPerReq ?? '-'} µs/req, ${a.name} ${ra.rps} req/s ${ra.cpuUsPerReq ?? '-'} µs/req\n`)
    }
    const r2 = (x: number) => Math.round(x * 100) / 100
    out[label] = {
      rps: r2(median(runs.map((r) => r.b.rps / r.a.rps))),
      cpuInverse: r2(median(runs.map((r) => (r.a.cpuUsPerReq ?? NaN) / (r.b.cpuUsPerReq ?? NaN)))),
      p99: r2(median(runs.map((r) => r.b.p99Us / r.a.p99Us))),
      rounds: runs,
    }
    process.stdout.write(`${label}: req/s ${out[label]!.rps}, CPU per request (inverse) ${out[label]!.cpuInverse}, p99 ${out[label]!.p99} (medians of ${rounds} rounds, both sides at once)\n`)
  }
  const outFile = join(ROOT, 'bench', 'pairs.json')
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, connections: CONNECTIONS, pairs: out }, null, 2) + '\n')
  process.stdout.write(`\nwritten ${outFile}\n`)
}

async function stopAll(): Promise<void> {
  // SIGTERM lets each gateway drain and exit, which is when --cpu-prof writes its profile
  await Promise.all(children.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null) return resolve()
    const t = setTimeout(() => { c.kill('SIGKILL'); resolve() }, 10_000)
    c.once('exit', () => { clearTimeout(t); resolve() })
    c.kill('SIGTERM')
  })))
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).message}\n`)
    process.exitCode = 1
  })
  .finally(() => stopAll())
