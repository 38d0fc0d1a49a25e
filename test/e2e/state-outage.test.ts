// onStoreError per purpose against a real gateway whose Redis is killed (DESIGN §2): the default
// { replay: deny, rateLimit: local } refuses signed requests but keeps rate-limited routes serving, and
// /readyz is 503 only while a `deny` purpose cannot be served.
import t from 'tap'
import { Pool } from 'undici'
import { startBackend, startGateway, testSecret } from './harness.js'
import { RedisProcess, freePort, until, noRedisServer } from './state-servers.js'
import { signWorkerV1 } from '../../src/client/index.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const secrets = { TOKEN: testSecret('tok'), WORKER: testSecret('wrk') }

function config(upstream: string, port: number, prefix: string, onStoreError?: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
state:
  store: redis
  redis: { url: "redis://127.0.0.1:${port}", prefix: "${prefix}" }
  timeout: 300ms
  replicas: 2
${onStoreError ? `  onStoreError: ${onStoreError}\n` : ''}upstreams:
  backend: { url: ${upstream}, timeout: 5s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:TOKEN}" }
schemes:
  workers: { type: worker-v1, secret: "\${env:WORKER}", window: 5m, roles: [ops] }
routes:
  - { path: /limited, upstream: backend, auth: [bearer], rateLimit: { max: 10, window: 1m, by: identity } }
  - { path: /signed, upstream: backend, auth: [workers], rateLimit: false }
`
}

async function status(pool: Pool, path: string, headers: Record<string, string>): Promise<{ status: number; code?: string }> {
  const res = await pool.request({ path, method: 'GET', headers })
  const text = await res.body.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { code?: string }).code
  } catch {
    code = undefined
  }
  return { status: res.statusCode, ...(code ? { code } : {}) }
}

const readyz = async (adminUrl: string | undefined) => (await fetch(adminUrl + '/readyz')).status

t.test('Redis down: default { replay: deny, rateLimit: local }, and a config with no deny purpose', { skip: noRedisServer }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-outage-'))
  const port = await freePort()
  const redis = new RedisProcess(port, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir])
  await redis.start()
  const backend = await startBackend()
  const byDefault = await startGateway(config(backend.url, port, 'pc-outage-default:'), secrets)
  const noDeny = await startGateway(config(backend.url, port, 'pc-outage-nodeny:', '{ replay: local, rateLimit: allow }'), secrets)
  const pd = new Pool(byDefault.url)
  const pn = new Pool(noDeny.url)
  t.teardown(async () => {
    await Promise.all([pd.close(), pn.close()])
    await Promise.all([byDefault.stop(), noDeny.stop()])
    await backend.close()
    await redis.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  const auth = { authorization: `Bearer ${secrets.TOKEN}` }
  const worker = (id: string) => signWorkerV1({ id, secret: secrets.WORKER }) as unknown as Record<string, string>
  t.ok(await until(async () => (await readyz(byDefault.adminUrl)) === 200 && (await readyz(noDeny.adminUrl)) === 200, 10_000), 'both ready while Redis is up')

  await redis.stop()
  t.ok(await until(async () => (await readyz(byDefault.adminUrl)) === 503, 10_000), 'default: /readyz 503 (replay is a deny purpose)')
  t.same(await status(pd, '/signed', worker('w-1')), { status: 503, code: 'STATE_UNAVAILABLE' }, 'default: a signed request is refused')
  const limited = []
  for (let i = 0; i < 7; i++) limited.push((await status(pd, '/limited', auth)).status)
  t.same(limited, [200, 200, 200, 200, 200, 429, 429], 'default: rate limits counted locally, ceil(10 / 2) = 5')

  t.equal(await readyz(noDeny.adminUrl), 200, 'no deny purpose: /readyz stays 200')
  const w = worker('w-2')
  t.equal((await status(pn, '/signed', w)).status, 200, 'replay: local checks in memory')
  t.same(await status(pn, '/signed', w), { status: 401, code: 'REPLAYED' }, 'and catches the replay')
  const allowed = []
  for (let i = 0; i < 12; i++) allowed.push((await status(pn, '/limited', auth)).status)
  t.equal(allowed.filter((s) => s === 200).length, 12, 'rateLimit: allow lets every request through')
})
