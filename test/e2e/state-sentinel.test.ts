// Two gateways behind Redis Sentinel (DESIGN §7 Replicas): the primary is killed, the sentinels promote the
// replica, and both gateways continue on the new primary without a restart (within 15 s of the switch).
// A request whose replay check was in flight when the primary died is never resent: after the failover
// the same request is a first use, not a replay. During the switch requests follow onStoreError.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Pool } from 'undici'
import { startBackend, startGateway, testSecret } from './harness.js'
import { adminCall, gatewayReady, startSentinelSet, until, noRedisServer } from './state-servers.js'
import { signWorkerV1 } from '../../src/client/index.js'

const secrets = { TOKEN: testSecret('tok'), WORKER: testSecret('wrk') }

function config(upstream: string, sentinels: number[], name: string, prefix: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
state:
  store: redis
  redis: { sentinels: [${sentinels.map((p) => `"127.0.0.1:${p}"`).join(', ')}], name: ${name}, prefix: "${prefix}" }
  timeout: 500ms
  replicas: 2
upstreams:
  backend: { url: ${upstream}, timeout: 5s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:TOKEN}" }
schemes:
  workers: { type: worker-v1, secret: "\${env:WORKER}", window: 5m, roles: [ops] }
routes:
  - { path: /signed, upstream: backend, auth: [workers], rateLimit: false }
`
}

async function status(pool: Pool, headers: Record<string, string>): Promise<{ status: number; code?: string }> {
  const res = await pool.request({ path: '/signed', method: 'GET', headers })
  const text = await res.body.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { code?: string }).code
  } catch {
    code = undefined
  }
  return { status: res.statusCode, ...(code ? { code } : {}) }
}

const worker = (id: string) => signWorkerV1({ id, secret: secrets.WORKER }) as unknown as Record<string, string>

t.test('Sentinel: primary killed, both gateways follow the promotion; nothing in flight is resent', { skip: noRedisServer }, async (t) => {
  const set = await startSentinelSet()
  const backend = await startBackend()
  const prefix = `pc-sentinel-${randomBytes(3).toString('hex')}:`
  const sentinelPorts = set.sentinels.map((s) => s.port)
  const a = await startGateway(config(backend.url, sentinelPorts, set.name, prefix), secrets)
  const b = await startGateway(config(backend.url, sentinelPorts, set.name, prefix), secrets)
  const pa = new Pool(a.url)
  const pb = new Pool(b.url)
  t.teardown(async () => {
    await Promise.all([pa.close(), pb.close()])
    await Promise.all([a.stop(), b.stop()])
    await backend.close()
    await set.stop()
  })
  t.ok(await gatewayReady(a.adminUrl), 'replica A ready through the sentinels')
  t.ok(await gatewayReady(b.adminUrl), 'replica B ready')

  const before = worker('before')
  t.equal((await status(pa, before)).status, 200, 'accepted at A')
  t.same(await status(pb, before), { status: 401, code: 'REPLAYED' }, 'a replay at B (one primary, shared)')

  // Hang the primary, so A's replay check is sent and never answered, then kill it.
  set.primary.signal('SIGSTOP')
  const inFlight = worker('in-flight')
  t.same(await status(pa, inFlight), { status: 503, code: 'STATE_UNAVAILABLE' }, 'during the outage: onStoreError (replay: deny)')
  set.primary.signal('SIGKILL')

  const switched = await until(async () => (await set.primaryPort()) === set.replica.port, 30_000)
  t.ok(switched, 'the sentinels promoted the replica')
  const onNew = await until(async () => (await adminCall(set.replica.port, (r) => r.info('replication'))).includes('role:master'), 10_000)
  t.ok(onNew, 'the replica now answers as primary')

  // Within 15 s of the switch, each gateway serves again on the new primary, without a restart.
  const seen: string[] = []
  let n = 0
  const serving = async (pool: Pool) =>
    until(async () => {
      const r = await status(pool, worker(`probe-${++n}`)).catch((err: Error) => ({ status: 0, code: err.message }))
      seen.push(`${r.status}${r.code ? ' ' + r.code : ''}`)
      return r.status === 200
    }, 15_000)
  t.ok(await serving(pa), 'A serves on the new primary')
  t.comment(JSON.stringify([...new Set(seen)]))
  t.ok(await serving(pb), 'B serves on the new primary')
  for (const g of [a, b]) t.comment(g.logs().filter((l) => l.event === 'state.store').map((l) => `${String(l.mode)} ${String(l.detail)}`).join(' | '))
  t.same(
    [...new Set(seen)].filter((s) => s !== '200' && s !== '503 STATE_UNAVAILABLE'),
    [],
    'during the switch: only 200 or the onStoreError answer (503), never anything else',
  )

  t.equal((await status(pb, inFlight)).status, 200, 'the request whose check was in flight is a first use: it was never resent')
  t.same(await status(pa, inFlight), { status: 401, code: 'REPLAYED' }, 'and now a replay across the gateways, on the new primary')
  const after = worker('after')
  t.equal((await status(pa, after)).status, 200)
  t.same(await status(pb, after), { status: 401, code: 'REPLAYED' }, 'a replay across them is refused after the failover')
  const keys = await adminCall(set.replica.port, (r) => r.keys(`${prefix}replay:*`))
  t.ok(keys.length >= 3, 'the replay entries live on the new primary')

  for (const g of [a, b]) {
    for (const secret of Object.values(secrets)) t.notOk(g.output().includes(secret), 'no secret in the output')
    t.notMatch(g.output(), /"level":50/, 'no error logged')
  }
})
