// steps/admit.ts when the store fails part-way: on Redis Cluster the auth-failure key and the rate-limit key
// live on two nodes, and one may fail while the other answers. The decision must still be the steps' one by
// one: Redis' answer to the throttle read is kept when only the count falls back to process memory (at its
// share ceil(max / replicas)), and under onStoreError deny the 503 names the identity whose credential was
// verified, as the steps one by one do. (Found in review: the fused call used to re-read the throttle from
// the local counter, refusing what the steps allow.)
//
// Cluster is simulated by a fake link with the real Cluster key layout, so the real Cluster branch of the
// stores runs: the node holding the route's rl key refuses, the af node answers. The State's effectiveMax
// is the one of src/state/index.ts redisState (a closure there).
import t from 'tap'
import { admitLocally } from '../../../src/steps/admit.js'
import { checkCredentials, checkRoles, checkThrottle } from '../../../src/steps/authenticate.js'
import { checkReplayAndLimit } from '../../../src/steps/limits.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import type { CompiledRoute } from '../../../src/config/compile.js'
import type { Denial, Exchange } from '../../../src/exchange.js'
import { keyLayout } from '../../../src/state/redis-keys.js'
import { RedisRateLimitStore, type RedisLink } from '../../../src/state/redis.js'
import { Fallback, ResilientRateLimitStore, StoreHealth, storeErrorPolicy, type StoreErrorMode } from '../../../src/state/resilient.js'
import { StoreUnavailableError, type RateLimitHit, type State } from '../../../src/state/index.js'
import { rateLimitBucket } from '../../../src/state/client-ip.js'
import { exchangeFor, fakeRequest, loadGateway, testRuntime, type TestRuntime } from './fakes.js'

const OPS = 'ops-' + 'a1b2c3d4'.repeat(5)
const gw = loadGateway(
  `version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  be: { url: "http://127.0.0.1:9" }
identities:
  - { name: ops, roles: [admin], bearer: "\${env:OPS}" }
routes:
  - { path: /admin, upstream: be, auth: [bearer], roles: [admin], rateLimit: { max: 10, window: 1m, by: identity } }
  - { path: /public, upstream: be, public: true, rateLimit: { max: 10, window: 1m, by: ip } }
defaults:
  authFailures: { max: 6, window: 1m }
`,
  { OPS },
)
const IP = '10.7.0.1'
const REPLICAS = 3 // share of authFailures max 6 = 2

/** A Cluster seen through the link RedisRateLimitStore uses: rl keys live on a node that refuses. */
function fakeClusterLink() {
  const data = new Map<string, { count: number; expireAt: number }>()
  const rlNodeDown = (key: string) => key.includes('rl:rl:')
  const client = {
    status: 'ready',
    on() {},
    async ping() {
      return 'PONG'
    },
    async portcullisPeek(key: string): Promise<[number, number] | null> {
      const e = data.get(key)
      return e ? [e.count, e.expireAt - Date.now()] : null
    },
    async portcullisHit(key: string, windowMs: number): Promise<[number, number]> {
      if (rlNodeDown(key)) throw new Error('CLUSTERDOWN the node holding this slot is failing over')
      const e = data.get(key) ?? { count: 0, expireAt: Date.now() + windowMs }
      e.count++
      data.set(key, e)
      return [e.count, e.expireAt - Date.now()]
    },
  }
  return {
    keys: keyLayout('p:', true),
    client,
    connected: true,
    timeoutMs: 1000,
    onReady: () => () => {},
    hold() {},
    async release() {},
    call<T>(run: (c: typeof client) => Promise<T>): Promise<T> {
      return run(client).catch((err: Error) => {
        throw new StoreUnavailableError(`redis unavailable: ${err.message}`, 'unreachable')
      })
    },
  }
}

function clusterState(mode: StoreErrorMode): { state: State; fallback: Fallback; health: StoreHealth } {
  const link = fakeClusterLink() as unknown as RedisLink
  const health = new StoreHealth(link)
  const fallback = new Fallback(storeErrorPolicy({ replay: 'deny', rateLimit: mode }), REPLICAS, 1000)
  const limits = new ResilientRateLimitStore(new RedisRateLimitStore(link), health, fallback)
  const scaled = (max: number) => Math.ceil(max / fallback.replicas)
  const state = {
    replay: { kind: 'redis', remember: async () => true, size: async () => 0, close: async () => {} },
    limits,
    mode: () => (health.up ? 'ok' : 'degraded'),
    ready: () => true,
    // as src/state/index.ts redisState
    effectiveMax: (max: number, hit?: RateLimitHit) => {
      if (hit !== undefined) return fallback.localHits.has(hit) ? scaled(max) : max
      return !health.up && fallback.onStoreError.rateLimit === 'local' ? scaled(max) : max
    },
    reconfigure: () => [],
    close: async () => health.close(),
  } as unknown as State
  return { state, fallback, health }
}

/** A runtime on the simulated Cluster whose LOCAL fallback already holds `localFailures` for IP (an earlier fallback window). */
async function runtime(mode: StoreErrorMode, localFailures: number): Promise<{ rt: TestRuntime; health: StoreHealth }> {
  const rt = await testRuntime(gw)
  const { state, fallback, health } = clusterState(mode)
  for (let i = 0; i < localFailures; i++) await fallback.limits.hit('af:' + rateLimitBucket(IP), 60_000)
  ;(rt as unknown as { state: State }).state = state
  return { rt, health }
}

function routed(rt: TestRuntime, url: string, headers: Array<[string, string]>): Exchange {
  const { x } = exchangeFor(rt, fakeRequest({ url, headers, remoteAddress: IP }))
  if (checkPath(x, x.req!) || findRoute(x)) throw new Error(`no route for ${url}`)
  return x
}

async function settle(p: PromiseLike<Denial | undefined> | Denial | undefined): Promise<{ denial?: Denial | undefined; thrown?: string }> {
  try {
    return { denial: await p }
  } catch (err) {
    return { thrown: (err as Error).name }
  }
}

const stepwise = async (x: Exchange) => (await checkThrottle(x)) ?? (await checkCredentials(x, x.req!)) ?? checkRoles(x) ?? (await checkReplayAndLimit(x))
const fused = (x: Exchange) => admitLocally(x, x.req!, x.route as CompiledRoute)

for (const url of ['/admin', '/public']) {
  t.test(`Cluster, rl node failing, onStoreError local, ${url}: fused decides as the steps one by one`, async (t) => {
    const headers: Array<[string, string]> = url === '/admin' ? [['authorization', `Bearer ${OPS}`]] : []
    const a = await runtime('local', 2)
    const xa = routed(a.rt, url, headers)
    const one = await settle(stepwise(xa))
    const b = await runtime('local', 2)
    const xb = routed(b.rt, url, headers)
    const two = await settle(fused(xb))
    a.health.close()
    b.health.close()
    t.same(one.denial, undefined, 'steps one by one: Redis says not throttled, the count falls back locally: allowed')
    t.same(
      { denial: two.denial?.code, limitedBy: two.denial?.limitedBy, identity: xb.identity?.name },
      { denial: one.denial?.code, limitedBy: one.denial?.limitedBy, identity: xa.identity?.name },
      'admitLocally: the same decision',
    )
  })
}

t.test('Cluster, rl node failing, onStoreError deny: the 503 names the verified identity on both paths', async (t) => {
  const headers: Array<[string, string]> = [['authorization', `Bearer ${OPS}`]]
  const a = await runtime('deny', 0)
  const xa = routed(a.rt, '/admin', headers)
  const one = await settle(stepwise(xa))
  const b = await runtime('deny', 0)
  const xb = routed(b.rt, '/admin', headers)
  const two = await settle(fused(xb))
  a.health.close()
  b.health.close()
  t.equal(one.thrown, 'StoreUnavailableError')
  t.equal(two.thrown, 'StoreUnavailableError')
  t.equal(xa.identity?.name, 'ops', 'steps one by one: the audit line of the 503 names ops (identity, fp, authMethod)')
  t.equal(xb.identity?.name, xa.identity?.name, 'admitLocally: the same identity on the 503 audit line')
})
