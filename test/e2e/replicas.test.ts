// Two gateway processes on one Redis behave as one (DESIGN §7 replicas), and each onStoreError
// mode does what §2 says when Redis stops — and recovers without a restart when it returns.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Pool } from 'undici'
import { startBackend, startGateway, testSecret, type RunningGateway } from './harness.js'
import { signRfc9421, signWorkerV1 } from '../../src/client/index.js'
import { REDIS_SERVER, REDIS_URL, redisSkip } from '../redis-env.js'

const secrets = { TOKEN: testSecret('tok'), WORKER: testSecret('wrk'), SIGNKEY: testSecret('sig') }

function config(upstream: string, redisUrl: string, prefix: string, onStoreError = 'deny', admin = false): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
${admin ? 'admin: { listen: 127.0.0.1:0 }\n' : ''}state:
  store: redis
  redis: { url: "${redisUrl}", prefix: "${prefix}" }
  timeout: 300ms
  onStoreError: ${onStoreError}
  replicas: 2
upstreams:
  backend: { url: ${upstream}, timeout: 5s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:TOKEN}" }
schemes:
  workers: { type: worker-v1, secret: "\${env:WORKER}", window: 5m, roles: [ops] }
  signed: { type: rfc9421, window: 60s, keys: { w-1: "\${env:SIGNKEY}" }, roles: [ops] }
routes:
  - { path: /limited, upstream: backend, auth: [bearer], rateLimit: { max: 10, window: 1m, by: identity } }
  - { path: /signed, upstream: backend, auth: [workers, signed] }
`
}

async function status(pool: Pool, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; code?: string }> {
  const res = await pool.request({ path, method: method as 'GET', headers, ...(body ? { body } : {}) })
  const text = await res.body.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { code?: string }).code
  } catch {
    code = undefined
  }
  return { status: res.statusCode, ...(code ? { code } : {}) }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = createServer()
      s.once('error', () => r(true)) // port taken = redis is up
      s.listen(port, '127.0.0.1', () => s.close(() => r(false)))
    })
    if (up) return child
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('redis-server did not start')
}

t.test('two replicas share the replay cache and the rate limits', { skip: redisSkip }, async (t) => {
  const backend = await startBackend()
  const prefix = `portcullis-test:${randomBytes(4).toString('hex')}:`
  const a = await startGateway(config(backend.url, REDIS_URL, prefix), secrets)
  const b = await startGateway(config(backend.url, REDIS_URL, prefix), secrets)
  const pa = new Pool(a.url)
  const pb = new Pool(b.url)
  t.teardown(async () => {
    await Promise.all([pa.close(), pb.close()])
    await Promise.all([a.stop(), b.stop()])
    await backend.close()
  })

  const w = { ...signWorkerV1({ id: 'worker-1', secret: secrets.WORKER }) }
  t.equal((await status(pa, '/signed', w)).status, 200, 'worker-v1 accepted by replica A')
  t.same(await status(pb, '/signed', w), { status: 401, code: 'REPLAYED' }, 'the same worker-v1 request is a replay at replica B')

  const body = '{"hello":"world"}'
  const s = { ...signRfc9421({ keyId: 'w-1', secret: secrets.SIGNKEY, method: 'POST', url: `${b.url}/signed`, body }) } as Record<string, string>
  // @authority is the Host header: send the same Host to both replicas
  const host = new URL(b.url).host
  t.equal((await status(pb, '/signed', { ...s, host }, 'POST', body)).status, 200, 'rfc9421 accepted by replica B')
  t.same(await status(pa, '/signed', { ...s, host }, 'POST', body), { status: 401, code: 'REPLAYED' }, 'the same nonce is a replay at replica A')

  const auth = { authorization: `Bearer ${secrets.TOKEN}` }
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => status(i % 2 ? pa : pb, '/limited', auth)))
  t.equal(results.filter((r) => r.status === 200).length, 10, 'exactly the shared limit of 10 got through across both replicas')
  t.equal(results.filter((r) => r.status === 429).length, 20, 'the rest were rate limited')

  for (const g of [a, b]) for (const secret of Object.values(secrets)) t.notOk(g.output().includes(secret), 'no secret in the output')
})

t.test('Redis stopped mid-run: deny, allow and local; recovery without restart', { skip: redisSkip }, async (t) => {
  const port = await freePort()
  let redis = await startRedis(port)
  const backend = await startBackend()
  const url = `redis://127.0.0.1:${port}`
  const prefix = 'portcullis-outage:'
  const gws: Record<string, RunningGateway> = {}
  for (const mode of ['deny', 'allow', 'local']) gws[mode] = await startGateway(config(backend.url, url, prefix + mode + ':', mode, true), secrets)
  const pools = Object.fromEntries(Object.entries(gws).map(([k, g]) => [k, new Pool(g.url)])) as Record<string, Pool>
  t.teardown(async () => {
    await Promise.all(Object.values(pools).map((p) => p.close()))
    await Promise.all(Object.values(gws).map((g) => g.stop()))
    redis.kill('SIGKILL')
    await backend.close()
  })
  const auth = { authorization: `Bearer ${secrets.TOKEN}` }
  for (const mode of ['deny', 'allow', 'local']) t.equal((await status(pools[mode]!, '/limited', auth)).status, 200, `${mode}: 200 while Redis is up`)

  redis.kill('SIGKILL')
  await new Promise((r) => setTimeout(r, 300))

  const signed = (id: string) => ({ ...signWorkerV1({ id, secret: secrets.WORKER }) })
  t.same(await status(pools.deny!, '/limited', auth), { status: 503, code: 'STATE_UNAVAILABLE' }, 'deny: rate-limited route answers 503')
  t.same(await status(pools.deny!, '/signed', signed('w-deny')), { status: 503, code: 'STATE_UNAVAILABLE' }, 'deny: a signed request is never let through unchecked')
  const denyAdmin = gws.deny!.adminUrl
  if (denyAdmin) {
    const ready = await fetch(denyAdmin + '/readyz')
    t.equal(ready.status, 503, 'deny: /readyz is 503 while the store is unreachable')
    const readyLocal = await fetch(gws.local!.adminUrl + '/readyz')
    t.equal(readyLocal.status, 200, 'local: /readyz stays 200')
  }

  t.equal((await status(pools.allow!, '/limited', auth)).status, 200, 'allow: passes')
  t.equal((await status(pools.allow!, '/signed', signed('w-allow'))).status, 200, 'allow: signed request passes')

  const w = signed('w-local')
  t.equal((await status(pools.local!, '/signed', w)).status, 200, 'local: signed request checked locally')
  t.same(await status(pools.local!, '/signed', w), { status: 401, code: 'REPLAYED' }, 'local: replays caught by the local cache')
  // limit 10 across 2 replicas → ceil(10/2) = 5 locally; one request was already counted in Redis
  const local = []
  for (let i = 0; i < 8; i++) local.push((await status(pools.local!, '/limited', auth)).status)
  t.equal(local.filter((s) => s === 200).length, 5, 'local: the limit becomes ceil(max / replicas)')

  redis = await startRedis(port)
  let recovered = false
  for (let i = 0; i < 40 && !recovered; i++) {
    recovered = (await status(pools.deny!, '/signed', signed(`w-back-${i}`))).status === 200
    if (!recovered) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(recovered, 'deny: back to Redis by itself, no restart')
})
