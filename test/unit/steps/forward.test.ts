// Step 6 (src/steps/forward.ts) with the upstream pools replaced by a recorder: what the upstream is
// sent (identity headers only for an allowed request, credentials stripped, the authorized target, the
// request id), what the client gets back on top (x-request-id, x-ratelimit-*), and the audit line for
// an answer, a failure before any byte went out, and one after. The join route's own answer too.
import t from 'tap'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { forwardRequest, respondJoin } from '../../../src/steps/forward.js'
import { checkCredentials, checkRoles } from '../../../src/steps/authenticate.js'
import { checkReplayAndLimit } from '../../../src/steps/limits.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import type { CompiledRoute } from '../../../src/config/compile.js'
import type { JoinRoute } from '../../../src/config/compile.js'
import type { ForwardRequest, ForwardResult, UpstreamPools } from '../../../src/proxy/forward.js'
import { deriveKey } from '../../../src/auth/derive.js'
import { JOIN_PATH, MASTER, OPS_TOKEN, READER_TOKEN, exchangeFor, fakeRequest, testRuntime, type FakeRequestOptions, type TestRuntime } from './fakes.js'

/** A ServerResponse as far as these paths use it. */
function fakeResponse() {
  const r = {
    status: 0,
    headers: {} as OutgoingHttpHeaders,
    body: '',
    destroyed: false,
    writeHead(status: number, headers: OutgoingHttpHeaders) {
      r.status = status
      r.headers = headers
      return r
    },
    end(body?: string) {
      if (body) r.body += body
      return r
    },
    destroy() {
      r.destroyed = true
      return r
    },
  }
  return r
}

/** Pools that record the request and answer as told: a status (after onHeaders), or an error. */
function pools(rt: TestRuntime, answer: { status: number } | ForwardResult) {
  const seen: Array<{ f: ForwardRequest; out?: string[] }> = []
  rt.pools = {
    async forward(f: ForwardRequest, _res: ServerResponse, onHeaders: (s: number, h: string[]) => void): Promise<ForwardResult> {
      const entry: { f: ForwardRequest; out?: string[] } = { f }
      seen.push(entry)
      if ('error' in answer && answer.error) {
        if (answer.started) {
          entry.out = []
          onHeaders(200, entry.out)
        }
        return answer
      }
      entry.out = ['content-type', 'text/plain']
      onHeaders((answer as { status: number }).status, entry.out)
      return { started: true, status: (answer as { status: number }).status }
    },
  } as unknown as UpstreamPools
  return seen
}

async function decided(rt: TestRuntime, o: FakeRequestOptions) {
  const r = exchangeFor(rt, fakeRequest(o))
  const x = r.x
  if (checkPath(x, x.req!) || findRoute(x)) throw new Error(`no route for ${o.url}`)
  const d = (await checkCredentials(x, x.req!)) ?? checkRoles(x) ?? (await checkReplayAndLimit(x))
  return { ...r, denial: d }
}

t.test('an allowed request: identity headers set, credentials and forged x-auth-* dropped, the target as authorized', async (t) => {
  const rt = await testRuntime()
  const seen = pools(rt, { status: 201 })
  const { x, denial } = await decided(rt, { url: '/limited?b=2&a=1', headers: [['authorization', `Bearer ${OPS_TOKEN}`], ['x-auth-identity', 'root'], ['X_Auth_Roles', 'admin']] })
  t.equal(denial, undefined)
  const res = fakeResponse()
  await forwardRequest(x, x.req!, res as unknown as ServerResponse, x.route as CompiledRoute)
  t.equal(seen.length, 1)
  const { f, out } = seen[0]!
  t.equal(f.target, '/limited?b=2&a=1')
  t.equal(f.method, 'GET')
  t.equal(f.upstream.name, 'be')
  t.match(f.headers, { 'x-auth-identity': 'ops', 'x-auth-method': 'bearer', 'x-auth-roles': 'admin', 'x-request-id': x.reqId })
  t.equal(f.headers['authorization'], undefined, 'credentials: strip')
  t.notOk(Object.keys(f.headers).some((k) => k.toLowerCase() === 'x_auth_roles'), 'x_auth_* spelled with _ is dropped too')
  t.match(Object.fromEntries(out!.flatMap((v, i) => (i % 2 ? [] : [[v, out![i + 1]]]))), { 'content-type': 'text/plain', 'x-request-id': x.reqId, 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0' }, 'the client sees its request id and its limit')
  t.match(rt.audit.records[0]!.record, { event: 'allow', status: 201, identity: 'ops', reason: null, upstream: 'be' })
  t.type(rt.audit.records[0]!.detail?.upstreamMs, 'number')
})

t.test('report-only: a would-be refusal is forwarded without identity headers and logged as report', async (t) => {
  const rt = await testRuntime()
  const seen = pools(rt, { status: 204 })
  const { x, denial } = await decided(rt, { url: '/legacy/p', headers: [['authorization', `Bearer ${READER_TOKEN}`]] })
  t.same(denial, { code: 'FORBIDDEN' })
  x.wouldRefuse = denial
  await forwardRequest(x, x.req!, fakeResponse() as unknown as ServerResponse, x.route as CompiledRoute)
  const headers = seen[0]!.f.headers
  for (const h of ['x-auth-identity', 'x-auth-method', 'x-auth-roles', 'x-auth-fingerprint']) t.equal(headers[h], undefined, h)
  t.equal(headers['authorization'], undefined)
  t.match(rt.audit.records[0]!.record, { event: 'report', status: 204, reason: 'FORBIDDEN' })
})

t.test('an upstream failure before the response started is its contract error; after, the connection is cut', async (t) => {
  const rt = await testRuntime()
  pools(rt, { started: false, error: 'UPSTREAM_TIMEOUT' })
  const a = await decided(rt, { url: '/admin', headers: [['authorization', `Bearer ${OPS_TOKEN}`]] })
  const res = fakeResponse()
  await forwardRequest(a.x, a.x.req!, res as unknown as ServerResponse, a.x.route as CompiledRoute)
  t.match(a.reply.written, [{ status: 504, body: { code: 'UPSTREAM_TIMEOUT', requestId: a.x.reqId } }])
  t.equal(res.destroyed, false)
  t.match(rt.audit.records[0]!.record, { event: 'allow', status: 504, reason: 'UPSTREAM_TIMEOUT', identity: 'ops' })

  pools(rt, { started: true, error: 'UPSTREAM_UNAVAILABLE' })
  const b = await decided(rt, { url: '/admin', headers: [['authorization', `Bearer ${OPS_TOKEN}`]] })
  const res2 = fakeResponse()
  await forwardRequest(b.x, b.x.req!, res2 as unknown as ServerResponse, b.x.route as CompiledRoute)
  t.equal(b.reply.written.length, 0, 'nothing written after the response started')
  t.equal(res2.destroyed, true, 'cut instead')
  t.equal(rt.audit.records.length, 2, 'its audit line was the allow at the headers: still one')
  t.match(rt.audit.records[1]!.record, { event: 'allow', status: 200 })
})

t.test('respondJoin: the key answered with no-store and the request id; a bad body refused 400', async (t) => {
  const rt = await testRuntime()
  const { x, reply } = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  checkPath(x, x.req!)
  findRoute(x)
  x.identity = { name: 'join:node-9', roles: [], method: 'signed', fp: 'key:abcdef' }
  x.limitHeaders = { 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '9', 'x-ratelimit-reset': '60' }
  x.body = Buffer.from('{"keyid":"node-9"}')
  const res = fakeResponse()
  respondJoin(x, x.route as JoinRoute, res as unknown as ServerResponse)
  t.equal(res.status, 200)
  t.match(res.headers, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-request-id': x.reqId, 'x-ratelimit-limit': '10', 'content-length': Buffer.byteLength(res.body) })
  t.same(JSON.parse(res.body), { keyid: 'node-9', key: deriveKey(MASTER, 'node-9') })
  t.equal(reply.written.length, 0)
  t.match(rt.audit.records[0]!.record, { event: 'allow', status: 200, route: JOIN_PATH, identity: 'join:node-9', upstream: null })

  const bad = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  checkPath(bad.x, bad.x.req!)
  findRoute(bad.x)
  bad.x.body = Buffer.from('nope')
  const res2 = fakeResponse()
  respondJoin(bad.x, bad.x.route as JoinRoute, res2 as unknown as ServerResponse)
  t.equal(res2.status, 0, 'no key answer')
  t.match(bad.reply.written, [{ status: 400, body: { code: 'BAD_REQUEST' } }])
  t.match(rt.audit.records[1]!.record, { event: 'deny', status: 400, reason: 'BAD_REQUEST', route: JOIN_PATH })
})
