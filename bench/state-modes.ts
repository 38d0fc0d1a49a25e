// `node dist/bench/state-modes.js`: requests/second of one bearer route (rate limit, audit log on) with the
// state in memory, on a single Redis, behind Sentinel and on a three-master Cluster — one run, the same
// load for each, so the ratios compare (issue 16). Starts its own redis-server processes on free ports;
// the load generator is autocannon in its own process. Loopback only; every wait bounded.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RedisProcess, freePort, startCluster, startSentinelSet } from '../test/e2e/state-servers.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const TOKEN = randomBytes(32).toString('hex')
const children: ChildProcess[] = []

function listening(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let buf = ''
    const timer = setTimeout(() => reject(new Error(`no listening line from ${args.join(' ')}`)), 60_000)
    const onData = (d: Buffer) => {
      buf += d
      const line = buf.split('\n').find((l) => l.includes('"listening"'))
      if (!line) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stdout!.resume()
      resolve(String(JSON.parse(line).url))
    }
    child.stdout!.on('data', onData)
  })
}

function load(url: string, seconds: number): Promise<{ rps: number; p99: number; non2xx: number }> {
  return new Promise((resolve, reject) => {
    const cli = join(ROOT, 'node_modules', 'autocannon', 'autocannon.js')
    const child = spawn(process.execPath, [cli, '-j', '-c', String(CONNECTIONS), '-d', String(seconds), '-H', `authorization=Bearer ${TOKEN}`, url], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('close', () => {
      try {
        const r = JSON.parse(out) as { requests: { average: number }; latency: { p99: number }; non2xx: number }
        resolve({ rps: Math.round(r.requests.average), p99: r.latency.p99, non2xx: r.non2xx })
      } catch (err) {
        reject(err as Error)
      }
    })
  })
}

function config(backend: string, state: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
state:
${state}
upstreams:
  be: { url: "${backend}" }
identities:
  - name: bench
    roles: [ops]
    bearer: "\${env:BENCH_TOKEN}"
routes:
  - path: /v1/x
    upstream: be
    auth: [bearer]
    rateLimit: { max: 100000000, window: 1m }
`
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-state-'))
  const backend = await listening([join(ROOT, 'dist', 'bench', 'backend.js')])
  const singlePort = await freePort()
  const single = new RedisProcess(singlePort, ['--port', String(singlePort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir])
  await single.start()
  const sentinel = await startSentinelSet()
  const cluster = await startCluster()
  const sentinelPorts = sentinel.sentinels.map((s) => `"127.0.0.1:${s.port}"`).join(', ')
  const modes: [string, string][] = [
    ['memory', '  store: memory'],
    ['redis (single)', `  store: redis\n  redis: { url: "redis://127.0.0.1:${single.port}", prefix: "bench:" }`],
    ['redis (sentinel)', `  store: redis\n  redis: { sentinels: [${sentinelPorts}], name: ${sentinel.name}, prefix: "bench:" }`],
    ['redis (cluster)', `  store: redis\n  redis: { cluster: ["redis://127.0.0.1:${cluster.masters[0]!.port}"], prefix: "bench:" }`],
  ]
  const rows: { mode: string; rps: number; p99: number; non2xx: number }[] = []
  try {
    for (const [mode, state] of modes) {
      const file = join(dir, `${mode.replace(/\W+/g, '-')}.yaml`)
      writeFileSync(file, config(backend, state))
      const url = await listening([join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--config', file], { BENCH_TOKEN: TOKEN, PORTCULLIS_LOG_LEVEL: 'info' })
      await load(`${url}/v1/x`, 2) // warm-up, untimed
      rows.push({ mode, ...(await load(`${url}/v1/x`, SECONDS)) })
      children.pop()?.kill('SIGTERM')
    }
  } finally {
    await Promise.allSettled([single.stop(), sentinel.stop(), cluster.stop()])
  }
  const memory = rows[0]!.rps
  process.stdout.write(`state modes, bearer route, ${CONNECTIONS} connections, ${SECONDS} s each (autocannon in its own process)\n`)
  process.stdout.write('mode               req/s    ÷ memory   p99 ms   non-2xx\n')
  for (const r of rows) process.stdout.write(`${r.mode.padEnd(18)} ${String(r.rps).padStart(6)}   ${(r.rps / memory).toFixed(2).padStart(7)}   ${String(r.p99).padStart(6)}   ${r.non2xx}\n`)
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM')
  })
