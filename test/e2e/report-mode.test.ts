// DESIGN §3.2 through real sockets: on an `enforce: report` route every step decides as usual, a refusal
// of steps 3–5 is logged (event "report", the code it would have had) and the request is forwarded anyway,
// without identity headers unless it would have passed; framing, path, route, method and size still refuse.
import t from 'tap'
import { runCli, startBackend, startGateway, testSecret, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { rawRequest, send } from './raw-http.js'

const OPS = testSecret('report-ops')
const ADMIN = testSecret('report-admin')

const config = (backend: string, defaultsEnforce = '') => `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 1kb
admin:
  listen: 127.0.0.1:0
upstreams:
  be: { url: "${backend}", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:OPS}"
  - name: root
    roles: [admin]
    bearer: "\${env:ADMIN}"
routes:
  - prefix: /legacy/
    methods: [GET, POST]
    upstream: be
    auth: [bearer]
    roles: [admin]
    enforce: report
  - prefix: /strict/
    upstream: be
    auth: [bearer]
    enforce: on
  - prefix: /default/
    upstream: be
    auth: [bearer]
defaults:
  rateLimit: { max: 100, window: 1m }
${defaultsEnforce}`

let be: Backend
let gw: RunningGateway
t.before(async () => {
  be = await startBackend()
  gw = await startGateway(config(be.url, '  enforce: report\n'), { OPS, ADMIN }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

async function audit(reqId: string | string[] | undefined) {
  return gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000)
}

t.test('no credential on a report route: forwarded, no identity headers, logged as the 401 it would have been', async (t) => {
  const r = await send(gw.url, '/legacy/a', { headers: { 'x-auth-identity': 'root' } })
  t.equal(r.status, 200, 'forwarded')
  const got = be.requests.at(-1)!
  t.equal(got.url, '/legacy/a')
  t.notOk(Object.keys(got.headers).some((h) => h.startsWith('x-auth-')), 'no x-auth-* header reaches the backend (the client one stripped)')
  t.match(await audit(r.headers['x-request-id']), { event: 'report', reason: 'MISSING_CREDENTIALS', status: 200, identity: null, route: '/legacy/' })
})

t.test('a wrong token: forwarded without the credential, logged INVALID_CREDENTIALS with its fingerprint', async (t) => {
  const r = await send(gw.url, '/legacy/b', { headers: { authorization: 'Bearer not-a-configured-token' } })
  t.equal(r.status, 200)
  t.notOk(be.requests.at(-1)!.headers.authorization, 'credential stripped as on any route')
  t.match(await audit(r.headers['x-request-id']), { event: 'report', reason: 'INVALID_CREDENTIALS', status: 200, identity: null, fp: /^token:[0-9a-f]{6}$/ })
})

t.test('authenticated but without the role: forwarded without identity headers, logged FORBIDDEN under the verified identity', async (t) => {
  const r = await send(gw.url, '/legacy/c', { method: 'POST', headers: { authorization: `Bearer ${OPS}` }, body: 'hello' })
  t.equal(r.status, 200)
  const got = be.requests.at(-1)!
  t.equal(got.body.toString(), 'hello', 'the body is forwarded')
  t.notOk(got.headers['x-auth-identity'], 'no identity header for a request that would have been refused')
  t.match(await audit(r.headers['x-request-id']), { event: 'report', reason: 'FORBIDDEN', identity: 'ops', authMethod: 'bearer', status: 200 })
})

t.test('a request that would pass is an ordinary allow, with identity headers', async (t) => {
  const r = await send(gw.url, '/legacy/d', { headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(r.status, 200)
  t.equal(be.requests.at(-1)!.headers['x-auth-identity'], 'root')
  t.match(await audit(r.headers['x-request-id']), { event: 'allow', reason: null, identity: 'root' })
})

t.test('framing, path, route, method and body size are enforced on a report route', async (t) => {
  const before = be.requests.length
  const bad = await rawRequest(gw.port, `GET /legacy/%2e%2e/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`)
  t.equal(bad.status, 400, 'BAD_PATH')
  const method = await send(gw.url, '/legacy/x', { method: 'DELETE' })
  t.equal(method.status, 405, 'METHOD_NOT_ALLOWED')
  const big = await send(gw.url, '/legacy/x', { method: 'POST', body: 'x'.repeat(2000) })
  t.equal(big.status, 413, 'BODY_TOO_LARGE')
  const framing = await rawRequest(gw.port, `GET /legacy/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n`)
  t.equal(framing.status, 400, 'two Host headers')
  t.equal(be.requests.length, before, 'none of them forwarded')
})

t.test('defaults.enforce: report covers routes that do not say; enforce: on still refuses', async (t) => {
  const d = await send(gw.url, '/default/x')
  t.equal(d.status, 200, 'route without enforce takes defaults.enforce: report')
  const s = await send(gw.url, '/strict/x')
  t.equal(s.status, 401, 'enforce: on refuses')
  t.equal(s.json?.code, 'MISSING_CREDENTIALS')
})

t.test('metrics count would-be refusals with result="report"', async (t) => {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text()
  t.match(text, /portcullis_auth_decisions_total\{[^}]*route="\/legacy\/"[^}]*result="report"[^}]*reason="FORBIDDEN"[^}]*\} 1/)
})

t.test('check warns about each route in enforce: report', async (t) => {
  const file = writeConfig(config('http://127.0.0.1:9', '  enforce: report\n'))
  const r = await runCli(['check', '--config', file], { OPS, ADMIN })
  t.equal(r.code, 0, 'valid')
  t.match(r.stdout + r.stderr, /:\d+:\d+: warning: route \/legacy\/ is in enforce: report/)
  t.match(r.stdout + r.stderr, /:\d+:\d+: warning: route \/default\/ is in enforce: report/)
  t.notMatch(r.stdout + r.stderr, /route \/strict\/ is in enforce: report/)
})
