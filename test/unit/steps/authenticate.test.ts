// Steps 3 and 4 (DESIGN §3): the auth-failure throttle answers before any credential is looked at, a
// 401 counts one failure against the client address, roles are checked after authentication, the
// loopback rule needs both the socket peer and the client address on loopback, and a refused
// credential's fp / method / claimed name travel on the denial to the audit line.
import t from 'tap'
import { createHash } from 'node:crypto'
import { checkCredentials, checkRoles, checkThrottle } from '../../../src/steps/authenticate.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import { signWorkerV1 } from '../../../src/client/worker-v1.js'
import { rateLimitBucket } from '../../../src/state/client-ip.js'
import { OPS_TOKEN, READER_TOKEN, WORKER_SECRET, exchangeFor, fakeRequest, testRuntime, type FakeRequestOptions, type TestRuntime } from './fakes.js'

const fp = (kind: 'token' | 'key', s: string) => `${kind}:` + createHash('sha256').update(s).digest('hex').slice(0, 6)

/** An exchange that went through steps 1–2 (its route is known), as the pipeline hands it to step 3. */
function routed(rt: TestRuntime, o: FakeRequestOptions) {
  const r = exchangeFor(rt, fakeRequest(o))
  if (checkPath(r.x, r.x.req!) || findRoute(r.x)) throw new Error(`no route for ${o.url}`)
  return r.x
}

const bearer = (token: string): Array<[string, string]> => [['authorization', `Bearer ${token}`]]

t.test('a 401 counts one auth failure; at the limit the throttle answers 429 before credentials', async (t) => {
  const rt = await testRuntime()
  const ip = '10.9.0.1'
  const failures = async () => (await rt.state.limits.peek('af:' + rateLimitBucket(ip)))?.count ?? 0
  const wrong = routed(rt, { url: '/admin', headers: bearer('not-a-token-' + 'x'.repeat(30)), remoteAddress: ip })
  t.equal(await checkThrottle(wrong), undefined)
  t.match(await checkCredentials(wrong, wrong.req!), { code: 'INVALID_CREDENTIALS' })
  t.equal(await failures(), 1, 'one 401, one failure')

  const missing = routed(rt, { url: '/admin', remoteAddress: ip })
  t.equal(await checkThrottle(missing), undefined, 'under the limit (max 2)')
  t.match(await checkCredentials(missing, missing.req!), { code: 'MISSING_CREDENTIALS' })
  t.equal(await failures(), 2)

  // Now even a valid credential from that address is answered by the throttle, before it is checked.
  const good = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN), remoteAddress: ip })
  const d = await checkThrottle(good)
  t.match(d, { code: 'RATE_LIMITED', limitedBy: 'authFailures', headers: { 'retry-after': /^\d+$/, 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': /^\d+$/ } })
  t.equal(good.identity, undefined, 'no credential was looked at')
  t.equal(await failures(), 2, 'the throttle itself counts nothing')

  const other = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN), remoteAddress: '10.9.0.2' })
  t.equal(await checkThrottle(other), undefined, 'another address is not throttled')
})

t.test('a refusal that is not a 401 (403 by roles) counts no auth failure', async (t) => {
  const rt = await testRuntime()
  const ip = '10.9.1.1'
  const x = routed(rt, { url: '/admin', headers: bearer(READER_TOKEN), remoteAddress: ip })
  t.equal(await checkCredentials(x, x.req!), undefined)
  t.equal(x.identity?.name, 'reader')
  t.same(checkRoles(x), { code: 'FORBIDDEN' })
  t.equal(await rt.state.limits.peek('af:' + rateLimitBucket(ip)), undefined)

  const ops = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN), remoteAddress: ip })
  t.equal(await checkCredentials(ops, ops.req!), undefined)
  t.equal(checkRoles(ops), undefined, 'the admin role passes')
})

t.test('MISSING_CREDENTIALS carries the route challenge; a public route asks for nothing', async (t) => {
  const rt = await testRuntime()
  const x = routed(rt, { url: '/admin' })
  const d = await checkCredentials(x, x.req!)
  t.match(d, { code: 'MISSING_CREDENTIALS', headers: { 'www-authenticate': /Bearer/ } })
  const pub = routed(rt, { url: '/health', headers: bearer('whatever-' + 'y'.repeat(30)) })
  t.equal(await checkCredentials(pub, pub.req!), undefined)
  t.equal(pub.identity, undefined, 'public: no identity')
})

t.test('loopback: allow only when the socket peer and the client address are both loopback', async (t) => {
  const rt = await testRuntime()
  const cases: Array<[string, FakeRequestOptions, boolean]> = [
    ['peer 127.0.0.2 (loopback, not a trusted proxy)', { remoteAddress: '127.0.0.2' }, true],
    ['peer ::1', { remoteAddress: '::1' }, true],
    ['peer ::ffff:127.0.0.2', { remoteAddress: '::ffff:127.0.0.2' }, true],
    ['peer 127.0.0.1 is a trusted proxy forwarding no client: nothing says the client is local', { remoteAddress: '127.0.0.1' }, false],
    ['trusted loopback proxy forwarding a loopback client', { remoteAddress: '127.0.0.1', headers: [['x-forwarded-for', '127.0.0.5']] }, true],
    ['trusted loopback proxy forwarding a remote client', { remoteAddress: '127.0.0.1', headers: [['x-forwarded-for', '10.0.0.5']] }, false],
    ['remote peer claiming a loopback client (not trusted)', { remoteAddress: '10.0.0.5', headers: [['x-forwarded-for', '127.0.0.1']] }, false],
    ['remote peer', { remoteAddress: '10.0.0.5' }, false],
  ]
  for (const [name, o, allowed] of cases) {
    const x = routed(rt, { url: '/local', ...o })
    const d = await checkCredentials(x, x.req!)
    if (allowed) {
      t.equal(d, undefined, name)
      t.match(x.identity, { name: 'localhost', method: 'loopback', roles: [] }, name)
      t.equal(checkRoles(x), undefined, `${name}: roles do not apply to loopback`)
    } else {
      t.match(d, { code: 'MISSING_CREDENTIALS' }, name)
      t.equal(x.identity, undefined, name)
    }
  }
  const onOther = routed(rt, { url: '/admin', remoteAddress: '127.0.0.1' })
  t.match(await checkCredentials(onOther, onOther.req!), { code: 'MISSING_CREDENTIALS' }, 'only a loopback: allow route')
})

t.test('a refused credential: fp, authMethod and claimed travel on the denial; identity stays unset', async (t) => {
  const rt = await testRuntime()
  const token = 'wrong-' + 'z'.repeat(40)
  const x = routed(rt, { url: '/admin', headers: bearer(token) })
  t.match(await checkCredentials(x, x.req!), { code: 'INVALID_CREDENTIALS', fp: fp('token', token), authMethod: 'bearer' })
  t.equal(x.identity, undefined)

  const signed = signWorkerV1({ id: 'w-17', secret: 'not-the-secret-' + 'q'.repeat(30) })
  const w = routed(rt, { method: 'POST', url: '/work', headers: Object.entries(signed) })
  const d = await checkCredentials(w, w.req!)
  t.match(d, { code: 'INVALID_SIGNATURE', fp: fp('key', 'w-17'), authMethod: 'workers', claimed: 'w-17' })
  t.equal(w.identity, undefined)

  const good = routed(rt, { method: 'POST', url: '/work', headers: Object.entries(signWorkerV1({ id: 'w-17', secret: WORKER_SECRET })) })
  t.equal(await checkCredentials(good, good.req!), undefined)
  t.match(good.identity, { name: 'workers:w-17', method: 'workers', fp: fp('key', 'w-17'), roles: ['worker'] })
})

t.test('two credentials of different kinds are AMBIGUOUS_CREDENTIALS (a 401: counted)', async (t) => {
  const rt = await testRuntime()
  const ip = '10.9.2.1'
  const x = routed(rt, { method: 'POST', url: '/work', remoteAddress: ip, headers: [...bearer(OPS_TOKEN), ...Object.entries(signWorkerV1({ id: 'w-1', secret: WORKER_SECRET }))] })
  t.match(await checkCredentials(x, x.req!), { code: 'AMBIGUOUS_CREDENTIALS' })
  t.equal(x.identity, undefined)
  t.equal((await rt.state.limits.peek('af:' + rateLimitBucket(ip)))?.count, 1)
})

t.test(
  'loopback: a trusted loopback proxy that forwards no usable client address does not make its client local',
  async (t) => {
    const rt = await testRuntime()
    for (const headers of [[], [['x-forwarded-for', '']], [['x-forwarded-for', 'unknown']]] as Array<Array<[string, string]>>) {
      const x = routed(rt, { url: '/local', remoteAddress: '127.0.0.1', headers })
      t.match(await checkCredentials(x, x.req!), { code: 'MISSING_CREDENTIALS' }, JSON.stringify(headers))
    }
  },
)
