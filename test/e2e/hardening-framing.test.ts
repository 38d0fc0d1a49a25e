// Regressions of the framing and side-path findings (issue 10 items 4, 5, 10, 11, 12; DESIGN §3 step 0,
// §3.3): each request goes through the one pipeline, gets our JSON answer and one audit line, and nothing
// the gateway refused reaches the backend. Raw sockets, as an attacker would send them.
import t from 'tap'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { rawRequest, type RawResponse } from './raw-http.js'

const TOKEN = testSecret('framing')
const PROXY_TOKEN = testSecret('framing-proxy')

const config = (backend: string) => `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 1kb
  requestTimeout: 1s
  trustProxy: [127.0.0.1/32]
upstreams:
  be: { url: "${backend}", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN}"
routes:
  - path: /ws
    upstream: be
    auth: [bearer]
    websocket: true
  - path: /local/debug
    upstream: be
    auth: [bearer]
    loopback: allow
  - path: /open
    upstream: be
    public: true
  - prefix: /api/
    upstream: be
    auth: [bearer]
  - path: /signed
    methods: [POST]
    upstream: be
    auth: [signed]
schemes:
  signed:
    type: rfc9421
    keys:
      w1: "\${env:PROXY_TOKEN}"
defaults:
  authFailures: { max: 3, window: 1m }
`

let be: Backend
let gw: RunningGateway
t.before(async () => {
  be = await startBackend()
  gw = await startGateway(config(be.url), { TOKEN, PROXY_TOKEN }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

type Tap = Pick<typeof t, 'equal' | 'match' | 'ok'>

async function expectRefused(t: Tap, r: RawResponse, status: number, code: string, label: string): Promise<void> {
  t.equal(r.status, status, `${label}: ${status}`)
  t.equal(r.json?.code, code, `${label}: ${code}`)
  const reqId = r.headers['x-request-id']
  t.ok(reqId, `${label}: x-request-id`)
  if (reqId) t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000), { event: 'deny', reason: code, status }, `${label}: one audit line`)
}

const host = () => `Host: 127.0.0.1:${gw.port}`

t.test('regression: an upgrade that declares a body is 400 on every route, the backend receives nothing', async (t) => {
  const before = be.requests.length
  for (const path of ['/ws', '/open', '/api/x']) {
    for (const framing of ['Content-Length: 20', 'Transfer-Encoding: chunked']) {
      const r = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\n${host()}\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${framing}\r\n\r\n`)
      await expectRefused(t, r, 400, 'BAD_REQUEST', `${path} with ${framing}`)
    }
  }
  await sleep(100)
  t.equal(be.requests.length, before, 'nothing forwarded')
})

t.test('regression: CONNECT gets our 400 JSON and an audit line (Node used to drop it silently)', async (t) => {
  const r = await rawRequest(gw.port, `CONNECT 127.0.0.1:${be.port} HTTP/1.1\r\nHost: 127.0.0.1:${be.port}\r\n\r\n`)
  await expectRefused(t, r, 400, 'BAD_REQUEST', 'CONNECT')
})

t.test('regression: an Expect other than 100-continue gets our 400 JSON (Node used to answer 417 itself)', async (t) => {
  const before = be.requests.length
  const r = await rawRequest(gw.port, `GET /open HTTP/1.1\r\n${host()}\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n`)
  await expectRefused(t, r, 400, 'BAD_REQUEST', 'Expect: 200-ok')
  t.equal(be.requests.length, before, 'nothing forwarded')
})

t.test('Expect: 100-continue still works', async (t) => {
  const r = await rawRequest(gw.port, `POST /open HTTP/1.1\r\n${host()}\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`)
  t.match(r.raw.toString('latin1'), /HTTP\/1\.1 200/, 'answered 200')
})

t.test('regression: Transfer-Encoding on an HTTP/1.0 request is 400', async (t) => {
  const before = be.requests.length
  const r = await rawRequest(gw.port, `POST /open HTTP/1.0\r\n${host()}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n`)
  await expectRefused(t, r, 400, 'BAD_REQUEST', 'HTTP/1.0 + TE')
  await sleep(100)
  t.equal(be.requests.length, before, 'nothing forwarded')
})

t.test('regression: a request pipelined behind a 413 sent with Connection: close is never authorized or forwarded', async (t) => {
  const before = be.requests.length
  const second = `GET /api/pipelined HTTP/1.1\r\n${host()}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`
  const text = await new Promise<string>((resolve) => {
    const socket = connect(gw.port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => socket.destroy(), 5000)
    socket.on('data', (d) => (out += d.toString('latin1')))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
    // A complete request whose body is over bodyLimit, then a second one in the same packet.
    socket.on('connect', () => socket.write(`POST /api/x HTTP/1.1\r\n${host()}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 2000\r\n\r\n${'x'.repeat(2000)}` + second))
  })
  t.match(text, /^HTTP\/1\.1 413/, 'the first request is refused 413')
  t.match(text, /connection: close/i, 'with Connection: close')
  t.equal((text.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'exactly one response on the connection')
  await sleep(200)
  t.equal(be.requests.filter((r) => r.url === '/api/pipelined').length, 0, 'the pipelined request never reached the backend')
  t.equal(be.requests.length, before, 'nothing forwarded')
  t.equal(gw.audits().filter((l) => l.path === '/api/pipelined').length, 0, 'and was never decided')
})

t.test('regression: slow headers are cut at requestTimeout with 408 REQUEST_TIMEOUT', async (t) => {
  const r = await rawRequest(gw.port, [`GET /open HTTP/1.1\r\n${host()}\r\n`, 'X-Slow: 1\r\n'], { gapMs: 3000, timeoutMs: 8000 })
  t.equal(r.status, 408, '408')
  t.equal(r.json?.code, 'REQUEST_TIMEOUT', 'REQUEST_TIMEOUT')
  const reqId = r.headers['x-request-id']
  if (reqId) t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 5000), { event: 'deny', reason: 'REQUEST_TIMEOUT', status: 408 }, 'audited')
  else t.fail('no x-request-id')
})

t.test('regression: a slow body is cut at requestTimeout with 408, nothing forwarded', async (t) => {
  const before = be.requests.length
  const r = await rawRequest(gw.port, [`POST /api/slow HTTP/1.1\r\n${host()}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 10\r\n\r\nab`, 'cd'], { gapMs: 3000, timeoutMs: 8000 })
  t.equal(r.status, 408, '408')
  t.equal(r.json?.code, 'REQUEST_TIMEOUT', 'REQUEST_TIMEOUT')
  await sleep(100)
  t.equal(be.requests.filter((x) => x.url === '/api/slow' && x.body.length === 10).length, 0, 'no complete request reached the backend')
  t.ok(be.requests.length >= before)
})

t.test('regression: loopback: allow behind a trusted local proxy admits only a loopback client', async (t) => {
  const before = be.requests.length
  const remote = await rawRequest(gw.port, `GET /local/debug HTTP/1.1\r\n${host()}\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n`)
  await expectRefused(t, remote, 401, 'MISSING_CREDENTIALS', 'remote client via the local proxy')
  t.equal(be.requests.length, before, 'nothing forwarded')
  const local = await rawRequest(gw.port, `GET /local/debug HTTP/1.1\r\n${host()}\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  t.equal(local.status, 200, 'a loopback client behind the local proxy still passes')
})

t.test('regression: the auth-failure throttle answers before any credential is checked or body read', async (t) => {
  // Own client address (trusted XFF), so the other tests keep theirs.
  const xff = 'X-Forwarded-For: 198.51.100.7'
  for (let i = 0; i < 3; i++) {
    const r = await rawRequest(gw.port, `GET /api/x HTTP/1.1\r\n${host()}\r\n${xff}\r\nAuthorization: Bearer wrong-${i}\r\nConnection: close\r\n\r\n`)
    t.equal(r.status, 401, `failure ${i + 1}`)
  }
  const r0 = await rawRequest(gw.port, `GET /api/x HTTP/1.1\r\n${host()}\r\n${xff}\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`)
  t.equal(r0.status, 429, 'throttled: 429, even with the right token')
  // A signed request whose body is declared but never sent: reading it would wait for requestTimeout (408).
  const sig = 'Signature-Input: sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1;keyid="w1";nonce="n"\r\nSignature: sig1=:AAAA:\r\nContent-Digest: sha-256=:AAAA:'
  const r = await rawRequest(gw.port, `POST /signed HTTP/1.1\r\n${host()}\r\n${xff}\r\n${sig}\r\nContent-Length: 100\r\n\r\n`, { timeoutMs: 5000 })
  t.equal(r.status, 429, 'throttled before the body is read: 429, not 408')
  t.equal(r.json?.code, 'RATE_LIMITED')
  t.ok(r.headers['retry-after'], 'Retry-After')
})
