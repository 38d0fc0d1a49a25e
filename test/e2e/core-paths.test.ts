// Black-box, raw sockets: non-canonical request targets and malformed framing are refused with 400
// before any policy and nothing reaches the backend (DESIGN §3.1); the matched bytes are exactly the
// forwarded bytes, the query string is forwarded as received; prefix / :id / * semantics (§2).
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { rawGet, rawRequest, type RawResponse } from './raw-http.js'

const TOKEN = testSecret('paths')
const SECRETS = [TOKEN]

const config = (backend: string) => `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  be: { url: "${backend}", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN}"
routes:
  - prefix: /pools/
    upstream: be
    public: true
  - prefix: /tenants
    upstream: be
    public: true
  - path: /nodes/:id/heartbeat
    upstream: be
    public: true
  - path: /files/*
    upstream: be
    public: true
  - prefix: /admin
    upstream: be
    auth: [bearer]
`

let be: Backend
let gw: RunningGateway
t.before(async () => {
  be = await startBackend()
  gw = await startGateway(config(be.url), { TOKEN }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

type Tap = Pick<typeof t, 'equal' | 'same' | 'match' | 'ok' | 'notOk'>

function expectBadPath(t: Tap, r: RawResponse, label: string): void {
  t.equal(r.status, 400, `${label}: 400`)
  t.match(r.headers['content-type'] ?? '', /^application\/json/, `${label}: JSON`)
  t.same(Object.keys(r.json ?? {}).sort(), ['code', 'error', 'requestId'], `${label}: {error, code, requestId}`)
  t.equal(r.json?.code, 'BAD_PATH', `${label}: BAD_PATH`)
}

t.test('non-canonical targets → 400 BAD_PATH, nothing forwarded', async (t) => {
  const targets: [string, string][] = [
    ['/pools/../admin', 'dot-dot segment'],
    ['/pools/../admin/x', 'dot-dot into an authenticated prefix'],
    ['/%61dmin/secret', 'regression: /%61dmin matched no /admin/* route and fell to a public catch-all'],
    ['/%41dmin/secret', 'encoded unreserved letter, upper case'],
    ['/pools/%7Ex', 'encoded ~'],
    ['/pools/%2e%2e/admin', 'encoded dot-dot'],
    ['/pools/%2E%2E/admin', 'encoded dot-dot, upper case'],
    ['/pools/.%2E/x', 'half-encoded dot-dot'],
    ['/pools/%2e./x', 'half-encoded dot-dot, other half'],
    ['/a/./b', 'dot segment'],
    ['/pools/./x', 'dot segment under a route'],
    ['/pools/x/..', 'trailing dot-dot'],
    ['/pools/x%2F..%2Fadmin', 'encoded slash, upper case'],
    ['/pools/x%2f..%2fadmin', 'encoded slash, lower case'],
    ['/pools/x%5C..%5Cadmin', 'encoded backslash'],
    ['/pools/x%5c', 'encoded backslash, lower case'],
    ['/pools/x\\..\\admin', 'raw backslash'],
    ['//pools/x', 'leading //'],
    ['/pools//x', 'inner //'],
    ['/pools/x;jsessionid=x', 'path parameter'],
    ['/admin;/x', 'path parameter on the authenticated prefix'],
    ['/pools/x%00', 'encoded NUL'],
    ['/pools/x%0d%0aX-Injected:%201', 'encoded CR LF'],
    ['http://127.0.0.1/pools/x', 'absolute-form'],
    ['http://evil.example/admin', 'absolute-form to another host'],
    ['/pools/x#frag', 'fragment'],
  ]
  const before = be.requests.length
  for (const [target, why] of targets) {
    const r = await rawGet(gw.port, target)
    expectBadPath(t, r, `${target} (${why})`)
    const reqId = r.headers['x-request-id']
    // Targets the HTTP parser lets through are decisions of the pipeline, and audited as such.
    if (target.startsWith('/pools/..') || target.startsWith('/pools/%2')) t.ok(reqId, `${target}: refused by the pipeline`)
    if (reqId) {
      const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000)
      t.match(line, { event: 'deny', reason: 'BAD_PATH', status: 400, route: null }, `${target}: audited`)
      t.equal(r.json?.requestId, reqId)
    }
  }
  await sleep(100)
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('a raw control byte, NUL, space or non-ASCII in the target gets the same BAD_PATH JSON body', async (t) => {
  const before = be.requests.length
  for (const [target, why] of [
    ['/pools/a\u0001b', 'SOH'],
    ['/pools/a\u0000b', 'NUL'],
    ['/pools/a\u007fb', 'DEL'],
    ['/pools/a\tb', 'tab'],
    ['/pools/caf\u00e9', 'non-ASCII byte'],
  ]) {
    const r = await rawRequest(gw.port, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'))
    expectBadPath(t, r, why!)
  }
  await sleep(100)
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('the query string is forwarded as received, byte for byte', async (t) => {
  for (const query of ['?a=%2F&b=..', '?next=/a/../b//c;d=%2e%2e', '?x=%00&y=%zz&z=a+b', '?q=%C3%A9&&empty=&=v', '?']) {
    const target = `/pools/q${query}`
    const r = await rawGet(gw.port, target)
    t.equal(r.status, 200, target)
    t.equal(be.requests.at(-1)?.url, target, `forwarded exactly: ${target}`)
  }
})

t.test('a malformed percent-escape is BAD_PATH in our JSON (not the router\'s); an undecodable but well-formed one is forwarded', async (t) => {
  const before = be.requests.length
  for (const target of ['/pools/%', '/pools/a%zz', '/pools/a%2', '/admin/%G0']) {
    const r = await rawGet(gw.port, target)
    expectBadPath(t, r, target)
    t.notMatch(r.body.toString(), /FST_ERR/, `${target}: no framework error leaks`)
    const reqId = r.headers['x-request-id']
    t.ok(reqId, `${target}: answered by the pipeline`)
    if (reqId) t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000), { event: 'deny', reason: 'BAD_PATH', status: 400 }, `${target}: audited`)
  }
  await sleep(100)
  t.equal(be.requests.length, before, 'the backend received nothing')
  // Not valid UTF-8 once decoded, but canonical: policy matches these bytes, and they are forwarded.
  for (const target of ['/pools/%FF', '/pools/%C3']) {
    const r = await rawGet(gw.port, target)
    t.equal(r.status, 200, target)
    t.equal(be.requests.at(-1)?.url, target, `forwarded exactly: ${target}`)
  }
})

t.test('a percent-encoded path is forwarded byte-identical', async (t) => {
  for (const target of ['/pools/a%20b', '/pools/caf%C3%A9', '/pools/caf%c3%a9', '/pools/a%25b', '/pools/a%2Bb', '/pools/a%3Ab', '/files/x%40y']) {
    const r = await rawGet(gw.port, target)
    t.equal(r.status, 200, target)
    t.equal(be.requests.at(-1)?.url, target, `not decoded or re-encoded: ${target}`)
  }
})

t.test('prefix, :id and * semantics', async (t) => {
  const cases: [string, number, string?][] = [
    ['/pools/', 200, '/pools/'],
    ['/pools/a/b', 200, '/pools/'],
    ['/pools', 404],
    ['/poolsx', 404],
    ['/poolsx/a', 404],
    ['/tenants', 200, '/tenants'],
    ['/tenants/', 200, '/tenants'],
    ['/tenants/t1/x', 200, '/tenants'],
    ['/tenantsx', 404],
    ['/nodes/n1/heartbeat', 200, '/nodes/:id/heartbeat'],
    ['/nodes/n1/x/heartbeat', 404],
    ['/nodes/heartbeat', 404],
    ['/nodes/n1/heartbeat/x', 404],
    ['/files/a', 200, '/files/*'],
    ['/files/a/b/c', 200, '/files/*'],
    ['/filesx/a', 404],
    ['/admin', 401, '/admin'],
    ['/adminx', 404],
  ]
  for (const [path, status, route] of cases) {
    const before = be.requests.length
    const r = await rawGet(gw.port, path)
    t.equal(r.status, status, `${path} → ${status}`)
    const reqId = r.headers['x-request-id'] ?? ''
    const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000)
    t.equal(line.route, route ?? null, `${path}: route ${route ?? 'none'}`)
    t.equal(be.requests.length, before + (status === 200 ? 1 : 0), `${path}: forwarded only when allowed`)
    if (status === 200) t.equal(be.requests.at(-1)?.url, path)
  }
})

t.test('malformed framing → 400, nothing forwarded', async (t) => {
  const smuggled = 'GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n'
  const cases: [string, string][] = [
    ['CL + TE', `POST /pools/f1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['TE + CL', `POST /pools/f2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${smuggled}`],
    ['duplicate Content-Length, different', `POST /pools/f3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`],
    ['duplicate Content-Length, equal', `POST /pools/f4 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`],
    ['Content-Length list', `POST /pools/f5 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello`],
    ['obs-fold', `GET /pools/f6 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n`],
    ['obs-fold with a tab', `GET /pools/f7 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\nConnection: close\r\n\r\n`],
    ['bare LF in the headers', `GET /pools/f8 HTTP/1.1\r\nHost: x\nX-A: a\r\nConnection: close\r\n\r\n`],
    ['bare LF everywhere', `GET /pools/f9 HTTP/1.1\nHost: x\nConnection: close\n\n`],
    ['bare CR in the headers', `GET /pools/f10 HTTP/1.1\r\nHost: x\rX-A: a\r\nConnection: close\r\n\r\n`],
    ['bare CR in a value', `GET /pools/f11 HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\nConnection: close\r\n\r\n`],
    ['control byte in a value', `GET /pools/f12 HTTP/1.1\r\nHost: x\r\nX-A: a\u0001b\r\nConnection: close\r\n\r\n`],
    ['NUL in a value', `GET /pools/f13 HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\nConnection: close\r\n\r\n`],
    ['space before the colon', `GET /pools/f14 HTTP/1.1\r\nHost: x\r\nX-A : a\r\nConnection: close\r\n\r\n`],
    ['bad chunk size', `POST /pools/f15 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`],
    ['Transfer-Encoding other than chunked', `POST /pools/f16 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello`],
    ['two Host headers', `GET /pools/f17 HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n`],
    ['no Host on HTTP/1.1', `GET /pools/f18 HTTP/1.1\r\nConnection: close\r\n\r\n`],
  ]
  const before = be.requests.length
  for (const [why, bytes] of cases) {
    const r = await rawRequest(gw.port, Buffer.from(bytes, 'latin1'), { method: 'GET' })
    t.equal(r.status, 400, `${why}: 400`)
    t.match(r.headers['content-type'] ?? '', /^application\/json/, `${why}: a JSON body`)
  }
  await sleep(150)
  t.same(be.requests.slice(before).map((r) => r.url), [], 'the backend received nothing')
})

t.test('an Upgrade with a body on a route without websocket: 400 BAD_REQUEST, audited, nothing forwarded', async (t) => {
  const before = be.requests.length
  const r = await rawRequest(gw.port, Buffer.from('POST /pools/up1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello', 'latin1'), { method: 'POST' })
  t.equal(r.status, 400)
  t.match(JSON.parse(r.body.toString()), { code: 'BAD_REQUEST', error: 'An upgrade request cannot have a body' })
  const reqId = r.headers['x-request-id']
  t.ok(reqId, 'carries x-request-id')
  t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000), { event: 'deny', reason: 'BAD_REQUEST', status: 400, method: 'POST', path: '/pools/up1' })
  await sleep(100)
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('an HTTP/1.0 request without Host is fine; the Host rule answers with our JSON and an audit line', async (t) => {
  const ok = await rawRequest(gw.port, Buffer.from('GET /pools/h10 HTTP/1.0\r\n\r\n', 'latin1'), { method: 'GET' })
  t.equal(ok.status, 200, 'HTTP/1.0 without Host is forwarded')
  const bad = await rawRequest(gw.port, Buffer.from('GET /pools/h11 HTTP/1.1\r\nHost: a\r\nhost: b\r\nConnection: close\r\n\r\n', 'latin1'), { method: 'GET' })
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body.toString()), { code: 'BAD_REQUEST', error: 'Exactly one Host header is required' })
  const reqId = bad.headers['x-request-id']
  t.ok(reqId)
  t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000), { event: 'deny', reason: 'BAD_REQUEST', status: 400 })
})

t.test('no secret appears in the gateway\'s output', async (t) => {
  await rawGet(gw.port, '/admin/../pools/x', [`Authorization: Bearer ${TOKEN}`])
  await rawGet(gw.port, '/admin/x', [`Authorization: Bearer ${TOKEN}`])
  t.equal(await gw.stop(), 0)
  for (const s of SECRETS) t.notOk(gw.output().includes(s), 'secret not in output')
})
