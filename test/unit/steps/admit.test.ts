// steps/admit.ts makes steps 3–5 in one store call on routes answered from the config alone. Its decision
// must be the one the steps make one by one: for every combination of route, credential, auth-failure
// count and rate-limit count, both ways start from the same store state and must end with the same
// denial, identity, limit headers and store state. And a throttled address is refused before its
// credential counts for anything.
import t from 'tap'
import { admitLocally } from '../../../src/steps/admit.js'
import { checkCredentials, checkRoles, checkThrottle } from '../../../src/steps/authenticate.js'
import { checkReplayAndLimit } from '../../../src/steps/limits.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import type { CompiledRoute } from '../../../src/config/compile.js'
import type { Exchange } from '../../../src/exchange.js'
import { rateLimitKey } from '../../../src/policy/limits.js'
import { rateLimitBucket } from '../../../src/state/client-ip.js'
import { exchangeFor, fakeRequest, loadGateway, testRuntime, type TestRuntime } from './fakes.js'

const OPS = 'ops-' + 'a1b2c3d4'.repeat(5)
const READER = 'rdr-' + 'e5f6a7b8'.repeat(5)
const KEY = 'key-' + '0badf00d'.repeat(5)
const env = { OPS, READER, KEY }

const config = `version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  be: { url: "http://127.0.0.1:9" }
identities:
  - { name: ops, roles: [admin], bearer: "\${env:OPS}" }
  - { name: reader, roles: [reader], bearer: "\${env:READER}" }
  - { name: robot, roles: [admin], apiKey: "\${env:KEY}" }
routes:
  - { path: /public, upstream: be, public: true, rateLimit: { max: 2, window: 1m, by: ip } }
  - { path: /public-open, upstream: be, public: true, rateLimit: false }
  - { path: /admin, upstream: be, auth: [bearer, apiKey], roles: [admin], rateLimit: { max: 2, window: 1m, by: identity } }
  - { path: /any, upstream: be, auth: [bearer], rateLimit: { max: 2, window: 1m, by: ip } }
  - { path: /unlimited, upstream: be, auth: [bearer, apiKey], rateLimit: false }
  - { path: /report, upstream: be, auth: [bearer], roles: [admin], enforce: report, rateLimit: { max: 2, window: 1m, by: identity } }
defaults:
  authFailures: { max: 2, window: 1m }
`
const gw = loadGateway(config, env)
const noThrottle = loadGateway(config.replace('authFailures: { max: 2, window: 1m }', 'authFailures: false'), env)

const credentials: Record<string, Array<[string, string]>> = {
  ops: [['authorization', `Bearer ${OPS}`]],
  reader: [['authorization', `Bearer ${READER}`]],
  robot: [['x-api-key', KEY]],
  wrong: [['authorization', 'Bearer wrong-' + 'x'.repeat(30)]],
  none: [],
  ambiguous: [['authorization', `Bearer ${OPS}`], ['x-api-key', KEY]],
}

const IP = '10.7.0.1'

function routed(rt: TestRuntime, url: string, headers: Array<[string, string]>): Exchange {
  const { x } = exchangeFor(rt, fakeRequest({ url, headers, remoteAddress: IP }))
  if (checkPath(x, x.req!) || findRoute(x)) throw new Error(`no route for ${url}`)
  return x
}

/**
 * Store state both ways start from: `failures` auth failures for the address, `counted` requests on the
 * route. With max 2 for both, 1 is under each limit and 2 at it.
 */
async function prepared(gateway: typeof gw, url: string, who: string, failures: number, counted: number): Promise<TestRuntime> {
  const rt = await testRuntime(gateway)
  for (let i = 0; i < failures; i++) await rt.state.limits.hit('af:' + rateLimitBucket(IP), 60_000)
  const route = routed(rt, url, []).route as CompiledRoute
  const identity = who === 'ops' || who === 'reader' || who === 'robot' ? { name: who, roles: [], method: 'bearer', fp: '' } : undefined
  if (route.rateLimit) for (let i = 0; i < counted; i++) await rt.state.limits.hit(rateLimitKey(route, route.rateLimit, identity, IP), 60_000)
  return rt
}

async function outcome(rt: TestRuntime, x: Exchange, denial: unknown) {
  const route = x.route as CompiledRoute
  const keys = ['ops', 'reader', 'robot', undefined].map((name) => (route.rateLimit ? rateLimitKey(route, route.rateLimit, name ? { name, roles: [], method: 'bearer', fp: '' } : undefined, IP) : ''))
  const counts = []
  for (const k of [...new Set(keys)]) counts.push(k ? ((await rt.state.limits.peek(k))?.count ?? 0) : 0)
  return {
    denial,
    identity: x.identity?.name,
    limitHeaders: x.limitHeaders,
    failures: (await rt.state.limits.peek('af:' + rateLimitBucket(IP)))?.count ?? 0,
    counts,
  }
}

t.test('admitLocally decides exactly as the steps one by one', async (t) => {
  let cases = 0
  for (const [name, gateway] of [['throttle on', gw], ['throttle off', noThrottle]] as const) {
    for (const url of ['/public', '/public-open', '/admin', '/any', '/unlimited', '/report']) {
      for (const who of Object.keys(credentials)) {
        for (const failures of [1, 2]) {
          for (const counted of [1, 2]) {
            const a = await prepared(gateway, url, who, failures, counted)
            const xa = routed(a, url, credentials[who]!)
            t.equal((xa.route as CompiledRoute).admitsLocally, true)
            const fused = await outcome(a, xa, await admitLocally(xa, xa.req!, xa.route as CompiledRoute))
            const b = await prepared(gateway, url, who, failures, counted)
            const xb = routed(b, url, credentials[who]!)
            const stepwise = await outcome(b, xb, (await checkThrottle(xb)) ?? (await checkCredentials(xb, xb.req!)) ?? checkRoles(xb) ?? (await checkReplayAndLimit(xb)))
            t.same(fused, stepwise, `${name} ${url} ${who} failures=${failures} counted=${counted}`)
            cases++
          }
        }
      }
    }
  }
  t.equal(cases, 2 * 6 * 6 * 2 * 2)
})

t.test('a throttled address with a valid credential: 429, no identity, its limit not counted', async (t) => {
  const rt = await prepared(gw, '/admin', 'ops', 2, 0)
  const x = routed(rt, '/admin', credentials.ops!)
  const d = await admitLocally(x, x.req!, x.route as CompiledRoute)
  t.match(d, { code: 'RATE_LIMITED', limitedBy: 'authFailures', headers: { 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'retry-after': /^\d+$/ } })
  t.equal(x.identity, undefined)
  const route = x.route as CompiledRoute
  t.equal(await rt.state.limits.peek(rateLimitKey(route, route.rateLimit!, { name: 'ops', roles: [], method: 'bearer', fp: '' }, IP)), undefined, 'nothing counted for ops')
})

t.test('only routes answered from the config alone are admitted locally', async (t) => {
  const fakesGw = loadGateway()
  const byId = new Map(fakesGw.routes.map((r) => [r.id, r.admitsLocally]))
  t.equal(byId.get('/health'), true, 'public')
  t.equal(byId.get('/admin'), true, 'bearer')
  t.equal(byId.get('/work'), false, 'a signed scheme: the throttle answers before its body is read or its signature checked')
})
