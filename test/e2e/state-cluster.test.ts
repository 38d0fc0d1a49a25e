// Two gateways on a three-master Redis Cluster (DESIGN §7 Replicas): a replay across replicas is refused,
// a shared rate limit is exact, the keys of many clients spread over the masters, and the replay-cache
// gauge counts the whole cluster. The cluster is the test's own redis-server children on free ports.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Pool } from 'undici'
import { startBackend, startGateway, testSecret } from './harness.js'
import { adminCall, countKeys, gatewayReady, startCluster, noRedisServer } from './state-servers.js'
import { signWorkerV1 } from '../../src/client/index.js'

const secrets = { TOKEN: testSecret('tok'), WORKER: testSecret('wrk') }

// docs/operations.md's least-privilege user, plus what Cluster needs (the slot map and the cluster state)
const CLUSTER_ACL = [
  'resetkeys', '~pc-cluster-*', 'resetchannels', '-@all',
  '+evalsha', '+eval', '+get', '+mget', '+set', '+incr', '+pexpire', '+pexpireat', '+pttl',
  '+ping', '+info', '+client|setname', '+quit', '+cluster|slots', '+cluster|info',
]

function config(upstream: string, seed: number, prefix: string, url?: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
state:
  store: redis
  redis: { cluster: ["redis://127.0.0.1:${seed}"], prefix: "${prefix}"${url ? `, url: "${url}"` : ''} }
  timeout: 2s
  replicas: 2
upstreams:
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

t.test('Redis Cluster: replays refused across replicas, exact shared limit, keys on every master', { skip: noRedisServer }, async (t) => {
  const cluster = await startCluster()
  const backend = await startBackend()
  const prefix = `pc-cluster-${randomBytes(3).toString('hex')}:`
  const seed = cluster.masters[0]!.port
  // replica B connects as an ACL user (url carries only the user and password; its host is not used)
  const password = randomBytes(24).toString('hex')
  for (const m of cluster.masters) await adminCall(m.port, (r) => r.call('ACL', 'SETUSER', 'portcullis-gw', 'on', `>${password}`, ...CLUSTER_ACL))
  const a = await startGateway(config(backend.url, seed, prefix), secrets)
  const b = await startGateway(config(backend.url, seed, prefix, `redis://portcullis-gw:${password}@ignored.invalid:1`), secrets)
  const pa = new Pool(a.url)
  const pb = new Pool(b.url)
  t.teardown(async () => {
    await Promise.all([pa.close(), pb.close()])
    await Promise.all([a.stop(), b.stop()])
    await backend.close()
    await cluster.stop()
  })

  t.ok(await gatewayReady(a.adminUrl), 'replica A ready (/readyz) on the cluster')
  t.ok(await gatewayReady(b.adminUrl), 'replica B ready, as the least-privilege ACL user')

  // many clients: each worker id and nonce picks its own hash tag
  const workers = Array.from({ length: 60 }, (_, i) => signWorkerV1({ id: `worker-${i}`, secret: secrets.WORKER }) as unknown as Record<string, string>)
  const first = await Promise.all(workers.map((w, i) => status(i % 2 ? pa : pb, '/signed', w)))
  t.equal(first.filter((r) => r.status === 200).length, 60, `every first use accepted (${JSON.stringify(first.filter((r) => r.status !== 200).slice(0, 3))})`)
  const again = await Promise.all(workers.map((w, i) => status(i % 2 ? pb : pa, '/signed', w)))
  t.same(
    again.filter((r) => r.status === 401 && r.code === 'REPLAYED').length,
    60,
    'each one replayed at the other replica is refused',
  )

  const auth = { authorization: `Bearer ${secrets.TOKEN}` }
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => status(i % 2 ? pa : pb, '/limited', auth)))
  t.equal(results.filter((r) => r.status === 200).length, 10, 'exactly the shared limit of 10 got through (30 at once over two replicas)')
  t.equal(results.filter((r) => r.status === 429).length, 20)

  const perMaster = await Promise.all(cluster.masters.map((m) => countKeys(m.port, prefix)))
  t.equal(perMaster.filter((n) => n > 0).length, 3, `keys spread over all three masters (${perMaster.join(', ')})`)

  const asUser = await Promise.all(cluster.masters.map((m) => adminCall(m.port, (r) => r.client('LIST') as Promise<string>)))
  t.ok(
    asUser.every((list) => /user=portcullis-gw .*\bname=portcullis\b|name=portcullis\b.*user=portcullis-gw /.test(list)),
    'replica B is connected to every master as the ACL user from url',
  )

  const metrics = await (await fetch(a.adminUrl + '/metrics')).text()
  const gauge = /^portcullis_replay_cache_entries\{store="redis"\} (\d+)$/m.exec(metrics)
  t.equal(Number(gauge?.[1]), 60, 'the replay-cache gauge counts the entries of the whole cluster')

  for (const g of [a, b]) {
    for (const secret of [...Object.values(secrets), password]) t.notOk(g.output().includes(secret), 'no secret (nor the Redis password) in the output')
    t.notMatch(g.output(), /NOPERM|Skipping the ready check/, 'the ACL rule allows everything the gateway does')
    t.notMatch(g.output(), /"level":50/, 'no error logged')
  }
})
