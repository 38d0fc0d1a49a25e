// The load generator, run as its own process by bench/run.ts so it does not share an event loop with
// anything measured: autocannon against one scenario (argv[2]: a JSON spec file), then one JSON line of
// results on stdout. Latencies are recorded per response in microseconds (autocannon's own histogram is
// whole milliseconds). Signed schemes are signed here, per request; ucan takes pre-minted invocations.
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { signRfc9421 } from '../src/client/index.js'

export interface LoadSpec {
  url: string
  path: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  connections: number
  seconds: number
  /** Per-request signing done here, in the load process. */
  sign?: { kind: 'worker-v1'; secret: string } | { kind: 'rfc9421'; keyId: string; secret: string }
  /** A file of pre-minted header sets, one JSON object a line; each is used once. */
  pool?: string
  /** Rotate over these paths and header sets (many routes × many identities). */
  rotate?: { paths: string[]; headers: Record<string, string>[] }
}

const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadSpec
const method = spec.method ?? 'GET'
let n = 0

function perRequest(): ((req: Record<string, unknown>) => Record<string, unknown>) | undefined {
  const base = spec.headers ?? {}
  const sign = spec.sign
  if (sign?.kind === 'worker-v1') {
    return (req) => {
      const id = `w${n++ % 1000}`
      const ts = String(Date.now())
      const sig = createHmac('sha256', sign.secret).update(`${id}:${ts}`).digest('hex')
      return { ...req, headers: { ...base, 'x-worker-id': id, 'x-worker-timestamp': ts, 'x-worker-signature': sig } }
    }
  }
  if (sign?.kind === 'rfc9421') {
    return (req) => ({ ...req, headers: { ...base, ...(signRfc9421({ keyId: sign.keyId, secret: sign.secret, method, url: spec.url + spec.path, ...(spec.body !== undefined ? { body: spec.body } : {}) }) as unknown as Record<string, string>) } })
  }
  if (spec.pool) {
    const sets = readFileSync(spec.pool, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>)
    return (req) => {
      // past the end the pool repeats: those requests are replays and show up as non-2xx
      const h = sets[n++ % sets.length]!
      return { ...req, headers: { ...base, ...h } }
    }
  }
  if (spec.rotate) {
    const { paths, headers } = spec.rotate
    return (req) => {
      const i = n++
      return { ...req, path: paths[i % paths.length], headers: { ...base, ...headers[i % headers.length] } }
    }
  }
  return undefined
}

const setup = perRequest()
const latUs: number[] = []
const instance = (autocannon as unknown as (o: autocannon.Options) => NodeJS.EventEmitter & PromiseLike<autocannon.Result>)({
  url: spec.url + spec.path,
  connections: spec.connections,
  duration: spec.seconds,
  method,
  headers: spec.headers ?? {},
  ...(spec.body !== undefined ? { body: spec.body } : {}),
  ...(setup ? { requests: [{ method, path: spec.path, ...(spec.body !== undefined ? { body: spec.body } : {}), setupRequest: setup }] } : {}),
} as autocannon.Options)
instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
  if (status >= 200 && status < 300) latUs.push(ms * 1000)
})
const r = await instance
latUs.sort((a, b) => a - b)
const pct = (p: number) => (latUs.length ? Math.round(latUs[Math.min(latUs.length - 1, Math.floor((p / 100) * latUs.length))]!) : 0)
process.stdout.write(JSON.stringify({ total: r.requests.total, rps: r.requests.average, p50Us: pct(50), p99Us: pct(99), non2xx: r.non2xx, errors: r.errors + r.timeouts, statusCodes: r.statusCodeStats }) + '\n')
