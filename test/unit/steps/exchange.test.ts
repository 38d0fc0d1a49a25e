// The Exchange (src/exchange.ts): whatever sequence of refuse / allowed / failed / internal a path makes,
// exactly one answer and exactly one audit line; `report` records the would-be refusal; the audit line
// names an identity only once its credential was verified (DESIGN §6), a claimed name goes in `claimed`.
import t from 'tap'
import { createHash } from 'node:crypto'
import { Exchange, type Denial } from '../../../src/exchange.js'
import { auditFields } from '../../../src/observe/audit.js'
import { checkCredentials, checkRoles, checkThrottle } from '../../../src/steps/authenticate.js'
import { checkReplayAndLimit } from '../../../src/steps/limits.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import { signWorkerV1 } from '../../../src/client/worker-v1.js'
import { OPS_TOKEN, READER_TOKEN, WORKER_SECRET, exchangeFor, fakeRequest, recordingReply, testRuntime, type FakeRequestOptions, type TestRuntime } from './fakes.js'

const fp = (kind: 'token' | 'key', s: string) => `${kind}:` + createHash('sha256').update(s).digest('hex').slice(0, 6)
const bearer = (token: string): Array<[string, string]> => [['authorization', `Bearer ${token}`]]

function routed(rt: TestRuntime, o: FakeRequestOptions) {
  const r = exchangeFor(rt, fakeRequest(o))
  if (checkPath(r.x, r.x.req!) || findRoute(r.x)) throw new Error(`no route for ${o.url}`)
  return r
}

/** Steps 3–5 as the pipeline chains them; the first refusal, if any. */
async function decide(x: Exchange): Promise<Denial | undefined> {
  return (await checkThrottle(x)) ?? (await checkCredentials(x, x.req!)) ?? checkRoles(x) ?? (await checkReplayAndLimit(x))
}

t.test('exactly one answer and one audit line, whatever the sequence of calls', async (t) => {
  const sequences: Array<[string, (x: Exchange) => void]> = [
    ['refuse, refuse', (x) => (x.refuse({ code: 'NO_ROUTE' }), x.refuse({ code: 'FORBIDDEN' }))],
    ['refuse, allowed', (x) => (x.refuse({ code: 'FORBIDDEN' }), x.allowed(200))],
    ['refuse, failed', (x) => (x.refuse({ code: 'FORBIDDEN' }), x.failed('UPSTREAM_UNAVAILABLE'))],
    ['refuse, internal', (x) => (x.refuse({ code: 'FORBIDDEN' }), x.internal(new Error('late')))],
    ['allowed, failed', (x) => (x.allowed(200), x.failed('UPSTREAM_TIMEOUT'))],
    ['allowed, refuse', (x) => (x.allowed(200), x.refuse({ code: 'RATE_LIMITED' }))],
    ['allowed, internal', (x) => (x.allowed(204), x.internal(new Error('late')))],
    ['failed, allowed, refuse', (x) => (x.failed('UPSTREAM_UNAVAILABLE'), x.allowed(200), x.refuse({ code: 'NO_ROUTE' }))],
    ['internal, internal', (x) => (x.internal(new Error('a')), x.internal(new Error('b')))],
  ]
  for (const [name, run] of sequences) {
    const rt = await testRuntime()
    const { x, reply } = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN) })
    run(x)
    t.equal(rt.audit.records.length, 1, `${name}: one audit line`)
    t.ok(reply.written.length <= 1, `${name}: at most one answer`)
    t.ok(x.done, `${name}: settled`)
    const first = name.split(',')[0]!
    const event = rt.audit.records[0]!.record.event
    t.equal(event, first === 'refuse' || first === 'internal' ? 'deny' : 'allow', `${name}: the first call decides`)
  }
})

t.test('refuse: the contract body, x-request-id, the denial headers and close', async (t) => {
  const rt = await testRuntime()
  const { x, reply } = exchangeFor(rt, fakeRequest({ method: 'DELETE', url: '/admin' }))
  checkPath(x, x.req!)
  t.match(findRoute(x), { code: 'METHOD_NOT_ALLOWED' })
  x.refuse({ code: 'METHOD_NOT_ALLOWED', headers: { allow: 'GET, POST' }, close: true })
  t.same(reply.written, [{ status: 405, body: { error: reply.written[0]!.body.error, code: 'METHOD_NOT_ALLOWED', requestId: x.reqId }, headers: { 'x-request-id': x.reqId, allow: 'GET, POST' }, close: true }])
  t.match(rt.audit.records[0]!.record, { event: 'deny', reqId: x.reqId, method: 'DELETE', path: '/admin', status: 405, reason: 'METHOD_NOT_ALLOWED', identity: null, fp: null })
})

t.test('a refused credential: identity null, the claimed name in claimed, its fp and method', async (t) => {
  const rt = await testRuntime()
  const { x } = routed(rt, { method: 'POST', url: '/work', headers: Object.entries(signWorkerV1({ id: 'w-17', secret: 'wrong-' + 's'.repeat(40) })) })
  x.refuse((await decide(x))!)
  t.match(rt.audit.records[0]!.record, { event: 'deny', status: 401, reason: 'INVALID_SIGNATURE', identity: null, claimed: 'w-17', fp: fp('key', 'w-17'), authMethod: 'workers' })

  const token = 'wrong-' + 't'.repeat(40)
  const b = routed(rt, { url: '/admin', headers: bearer(token), remoteAddress: '10.4.4.4' }).x
  b.refuse((await decide(b))!)
  t.match(rt.audit.records[1]!.record, { event: 'deny', reason: 'INVALID_CREDENTIALS', identity: null, claimed: null, fp: fp('token', token), authMethod: 'bearer' })
})

t.test('a verified identity is named on 403, 429 and REPLAYED refusals', async (t) => {
  const rt = await testRuntime()
  const forbidden = routed(rt, { url: '/admin', headers: bearer(READER_TOKEN) }).x
  forbidden.refuse((await decide(forbidden))!)
  t.match(rt.audit.records.at(-1)!.record, { event: 'deny', status: 403, reason: 'FORBIDDEN', identity: 'reader', authMethod: 'bearer', fp: fp('token', READER_TOKEN), claimed: null })

  for (let i = 0; i < 2; i++) {
    const limited = routed(rt, { url: '/limited', headers: bearer(OPS_TOKEN) }).x
    const d = await decide(limited)
    if (d) limited.refuse(d)
    else limited.allowed(200)
  }
  t.match(rt.audit.records.at(-1), { record: { event: 'ratelimit', status: 429, reason: 'RATE_LIMITED', identity: 'ops', authMethod: 'bearer' }, detail: { limitedBy: 'identity' } })

  const headers = Object.entries(signWorkerV1({ id: 'w-5', secret: WORKER_SECRET }))
  for (let i = 0; i < 2; i++) {
    const w = routed(rt, { method: 'POST', url: '/work', headers }).x
    const d = await decide(w)
    if (d) w.refuse(d)
    else w.allowed(200)
  }
  t.match(rt.audit.records.at(-1)!.record, { event: 'replay', status: 401, reason: 'REPLAYED', identity: 'workers:w-5', authMethod: 'workers', fp: fp('key', 'w-5'), claimed: null })
})

t.test('a throttled request names no identity: no credential was checked', async (t) => {
  const rt = await testRuntime()
  const ip = '10.6.6.6'
  for (let i = 0; i < 2; i++) {
    const x = routed(rt, { url: '/admin', remoteAddress: ip }).x
    x.refuse((await decide(x))!)
  }
  const x = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN), remoteAddress: ip }).x
  x.refuse((await decide(x))!)
  t.match(rt.audit.records.at(-1), { record: { event: 'ratelimit', status: 429, identity: null, authMethod: null, fp: null, ip }, detail: { limitedBy: 'authFailures' } })
})

t.test('report: the would-be code as reason, the upstream status as status', async (t) => {
  const rt = await testRuntime()
  const { x, reply } = routed(rt, { url: '/legacy/x', headers: bearer(READER_TOKEN) })
  const d = await decide(x)
  t.same(d, { code: 'FORBIDDEN' })
  x.wouldRefuse = d // what the pipeline does on an enforce: report route
  x.allowed(200)
  t.equal(reply.written.length, 0, 'nothing refused: the upstream answered')
  t.match(rt.audit.records[0]!.record, { event: 'report', status: 200, reason: 'FORBIDDEN', identity: 'reader', route: '/legacy/', upstream: 'be' })

  const missing = routed(rt, { url: '/legacy/y', remoteAddress: '10.5.5.5' })
  missing.x.wouldRefuse = await decide(missing.x)
  missing.x.allowed(404)
  t.match(rt.audit.records[1]!.record, { event: 'report', status: 404, reason: 'MISSING_CREDENTIALS', identity: null, authMethod: null })

  const failing = routed(rt, { url: '/legacy/z', headers: bearer(READER_TOKEN) })
  failing.x.wouldRefuse = await decide(failing.x)
  failing.x.failed('UPSTREAM_UNAVAILABLE')
  t.equal(failing.reply.written[0]!.status, 502)
  t.match(rt.audit.records[2]!.record, { event: 'report', status: 502, reason: 'FORBIDDEN' })
})

t.test('report: a would-be credential refusal keeps its fp and method, identity stays null', async (t) => {
  const rt = await testRuntime()
  const token = 'legacy-' + 'w'.repeat(40)
  const { x } = routed(rt, { url: '/legacy/r', headers: bearer(token) })
  x.wouldRefuse = await decide(x)
  x.allowed(200)
  t.match(rt.audit.records[0]!.record, { event: 'report', status: 200, reason: 'INVALID_CREDENTIALS', identity: null, fp: fp('token', token), authMethod: 'bearer', claimed: null })
})

t.test('an allowed public route logs identity anonymous, authMethod public; a refused one does not', async (t) => {
  const rt = await testRuntime()
  const ok = routed(rt, { url: '/health' }).x
  t.equal(await decide(ok), undefined)
  ok.allowed(200)
  t.match(rt.audit.records[0]!.record, { event: 'allow', status: 200, identity: 'anonymous', authMethod: 'public', fp: null, reason: null, route: '/health', upstream: 'be' })

  const down = routed(rt, { url: '/health' }).x
  down.failed('UPSTREAM_TIMEOUT')
  t.match(rt.audit.records[1]!.record, { event: 'allow', status: 504, reason: 'UPSTREAM_TIMEOUT', identity: 'anonymous', authMethod: 'public' })

  const big = routed(rt, { method: 'GET', url: '/health' }).x
  big.refuse({ code: 'BODY_TOO_LARGE', close: true })
  t.match(rt.audit.records[2]!.record, { event: 'deny', status: 413, identity: null, authMethod: null })
})

t.test('allowed on an authenticated route names the identity; allowed after a loopback admission is localhost', async (t) => {
  const rt = await testRuntime()
  const x = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN) }).x
  t.equal(await decide(x), undefined)
  x.allowed(201)
  t.match(rt.audit.records[0]!.record, { event: 'allow', status: 201, identity: 'ops', authMethod: 'bearer', fp: fp('token', OPS_TOKEN), reason: null, claimed: null })
  const l = routed(rt, { url: '/local', remoteAddress: '127.0.0.2' }).x
  t.equal(await decide(l), undefined)
  l.allowed(200)
  t.match(rt.audit.records[1]!.record, { identity: 'localhost', authMethod: 'loopback' })
})

t.test('internal(): 500 INTERNAL under the request id, the stack logged at error, never the message in the body', async (t) => {
  const rt = await testRuntime()
  const { x, reply } = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN) })
  const err = new Error('secret detail ' + OPS_TOKEN)
  x.internal(err)
  t.equal(reply.written.length, 1)
  const w = reply.written[0]!
  t.match(w, { status: 500, body: { code: 'INTERNAL', requestId: x.reqId }, headers: { 'x-request-id': x.reqId }, close: true })
  t.notMatch(JSON.stringify(w), 'secret detail', 'the error text stays in the log')
  t.match(rt.audit.records[0]!.record, { event: 'deny', status: 500, reason: 'INTERNAL', reqId: x.reqId })
  const logged = rt.logLines().filter((l) => l['level'] === 50)
  t.equal(logged.length, 1)
  t.match(logged[0], { reqId: x.reqId, msg: 'internal error', err: { message: /secret detail/, stack: /Error: secret detail[\s\S]*exchange\.test\.js/ } })

  // After the answer went out, a later failure is still logged under the id, but answers nothing more.
  x.internal(new TypeError('after'))
  t.equal(reply.written.length, 1)
  t.equal(rt.audit.records.length, 1)
  t.equal(rt.logLines().filter((l) => l['level'] === 50 && l['reqId'] === x.reqId).length, 2)

  const odd = routed(rt, { url: '/admin' }).x
  odd.internal('not an Error')
  t.match(rt.logLines().at(-1), { reqId: odd.reqId, err: { message: 'not an Error' } })
})

t.test('a request the parser refused: method and path as far as known, no route', async (t) => {
  const rt = await testRuntime()
  const reply = recordingReply()
  const x = new Exchange(rt, null, reply, '10.0.0.9', { method: null, path: null })
  x.refuse({ code: 'BAD_REQUEST', close: true })
  t.match(rt.audit.records[0]!.record, { event: 'deny', method: null, path: null, route: null, status: 400, reason: 'BAD_REQUEST', ip: '10.0.0.9', identity: null, upstream: null })
  t.equal(reply.written[0]!.close, true)
})

t.test(
  'internal(): the logged err.type names the error class',
  async (t) => {
    const rt = await testRuntime()
    const { x } = routed(rt, { url: '/admin', headers: bearer(OPS_TOKEN) })
    x.internal(new TypeError('boom'))
    t.match(rt.logLines().find((l) => l['level'] === 50), { reqId: x.reqId, err: { type: 'TypeError', message: 'boom' } })
  },
)

t.test('the audit writer\'s auditFields covers every field Exchange.record writes, in its order', async (t) => {
  const rt = await testRuntime()
  const runs: Array<(x: Exchange) => void> = [
    (x) => x.refuse({ code: 'INVALID_SIGNATURE', claimed: 'k"1\u2028', fp: 'key:abcdef', authMethod: 'signed' }),
    (x) => x.allowed(200),
    (x) => x.failed('UPSTREAM_TIMEOUT'),
  ]
  for (const run of runs) run(exchangeFor(rt, fakeRequest({ url: '/a"\\b' })).x)
  t.equal(rt.audit.records.length, runs.length)
  for (const { record } of rt.audit.records) t.equal(auditFields(record), JSON.stringify(record).slice(1, -1))
})
