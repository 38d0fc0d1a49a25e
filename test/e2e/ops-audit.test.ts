// Decisions made below the pipeline (DESIGN §3, §5, §6): a request the HTTP parser itself refuses is a
// decision and gets its audit line and metric like any other; an upstream slower than its `timeout` is
// a 504 on time, also sub-second and on a reused keep-alive connection.
import t from 'tap'
import { request } from 'node:http'
import { connect } from 'node:net'
import { signRfc9421, signWorkerV1, deriveKey } from '../../src/client/index.js'
import { startBackend, startGateway, testSecret } from './harness.js'
import { rawRequest } from './raw-http.js'

function get(base: string, path: string): Promise<{ status: number; ms: number; body: string }> {
  const start = Date.now()
  return new Promise((resolve, reject) => {
    const req = request(base + path, { timeout: 10_000 }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, ms: Date.now() - start, body }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

t.test('requests the HTTP parser refuses are audited and counted', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
upstreams:
  app: { url: ${backend.url} }
routes:
  - prefix: /pools/
    upstream: app
    public: true
`)
  t.teardown(() => gw.stop('SIGKILL'))

  const bad = await rawRequest(gw.port, Buffer.from('GET /pools/a\u0001b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'latin1'))
  t.equal(bad.status, 400)
  t.equal(bad.json?.code, 'BAD_PATH')
  const reqId = bad.headers['x-request-id']
  t.ok(reqId, 'the refusal carries x-request-id')
  t.equal(bad.json?.requestId, reqId, 'the same id as the body')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId)
  t.match(line, { event: 'deny', method: 'GET', path: '/pools/a\u0001b', route: null, identity: null, authMethod: null, fp: null, reason: 'BAD_PATH', ip: '127.0.0.1', status: 400, upstream: null })
  t.type(line.ms, 'number')

  const framing = await rawRequest(gw.port, 'POST /pools/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
  t.equal(framing.status, 400)
  t.equal(framing.json?.code, 'BAD_REQUEST')
  const framingLine = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === framing.headers['x-request-id'])
  t.match(framingLine, { event: 'deny', method: 'POST', path: '/pools/x', reason: 'BAD_REQUEST', status: 400, upstream: null })

  // Framing the parser refuses only after the request reached the pipeline (the body's): still one line, 400.
  const te = await rawRequest(gw.port, 'POST /pools/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello')
  t.equal(te.status, 400)
  t.equal(te.json?.code, 'BAD_REQUEST')
  t.ok(te.headers['x-request-id'])
  const teLine = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === te.headers['x-request-id'])
  t.match(teLine, { event: 'deny', method: 'POST', path: '/pools/te', route: '/pools/', reason: 'BAD_REQUEST', status: 400 })
  await new Promise((r) => setTimeout(r, 200))
  t.equal(gw.audits().filter((l) => l.path === '/pools/te').length, 1, 'exactly one line for it')

  // An unknown method is never a metric label value (labels stay bounded).
  const weird = await rawRequest(gw.port, 'FROBNICATE\u0001 /pools/x HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(weird.status, 400)
  const weirdLine = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === weird.headers['x-request-id'])
  t.equal(weirdLine.method, null)

  const metrics = (await get(gw.adminUrl!, '/metrics')).body
  t.match(metrics, /portcullis_requests_total\{route="[^"]*",method="GET",status="400"\} 1/)
  t.match(metrics, /portcullis_auth_decisions_total\{route="[^"]*",auth_method="[^"]*",result="deny",reason="BAD_PATH"\} 1/)
  t.notMatch(metrics, /FROBNICATE/)
  t.equal(backend.requests.length, 0, 'nothing forwarded')
})

t.test('an upstream slower than its timeout is 504 on time: sub-second, and on a reused connection', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  quick: { url: ${backend.url}, timeout: 300ms }
  second: { url: ${backend.url}, timeout: 1s }
routes:
  - { prefix: /quick, upstream: quick, public: true }
  - { prefix: /second, upstream: second, public: true }
`)
  t.teardown(() => gw.stop('SIGKILL'))
  // Warm the keep-alive connections first: the timeout must hold on a reused one too.
  t.equal((await get(gw.url, '/quick/x')).status, 200)
  t.equal((await get(gw.url, '/second/x')).status, 200)
  for (const [path, limitMs] of [
    ['/quick/slow?ms=900', 800],
    ['/quick/slow?ms=900', 800],
    ['/second/slow?ms=1700', 1600],
    ['/second/slow?ms=1700', 1600],
  ] as const) {
    const r = await get(gw.url, path)
    t.equal(r.status, 504, `${path}: 504`)
    t.match(JSON.parse(r.body), { code: 'UPSTREAM_TIMEOUT' })
    t.ok(r.ms < limitMs, `${path}: answered after ${r.ms} ms`)
  }
  t.equal((await get(gw.url, '/quick/slow?ms=50')).status, 200, 'a fast enough upstream still answers')
})

t.test('a client that goes away mid-body: one audit line for its request, not a store failure', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const master = testSecret('audit-master')
  const gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  app: { url: ${backend.url} }
schemes:
  signed: { type: rfc9421, derive: "\${env:AUDIT_MASTER}", roles: [worker] }
routes:
  - { prefix: /signed, upstream: app, auth: [signed] }
`, { AUDIT_MASTER: master })
  t.teardown(() => gw.stop('SIGKILL'))
  const body = 'x'.repeat(100)
  const h = signRfc9421({ keyId: 'w1', secret: deriveKey(master, 'w1'), method: 'POST', url: gw.url + '/signed/x', body })
  const host = new URL(gw.url).host
  const socket = connect(gw.port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise<void>((r) => socket.once('connect', () => r()))
  socket.write(`POST /signed/x HTTP/1.1\r\nHost: ${host}\r\nsignature: ${h.signature}\r\nsignature-input: ${h['signature-input']}\r\ncontent-digest: ${h['content-digest']}\r\ncontent-length: 100\r\n\r\n` + body.slice(0, 10))
  await new Promise((r) => setTimeout(r, 200))
  socket.destroy()
  const line = await gw.waitForLog((l) => l.msg === 'auth')
  t.match(line, { event: 'deny', method: 'POST', path: '/signed/x', route: '/signed', reason: 'BAD_REQUEST', status: 400 })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(gw.audits().length, 1, 'exactly one audit line')
  t.equal(backend.requests.length, 0, 'nothing forwarded')
})

t.test('an unreachable Redis is logged once as state.store degraded, without credentials', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const password = testSecret('redis-password')
  // Port 1: nothing listens there, so the store is unreachable from the start.
  const gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
state: { store: redis, redis: { url: "redis://portcullis:${password}@127.0.0.1:1", prefix: "audit-test:" }, onStoreError: allow, timeout: 200ms }
upstreams:
  app: { url: ${backend.url} }
routes:
  - { prefix: /p, upstream: app, public: true }
`)
  t.teardown(() => gw.stop('SIGKILL'))
  const line = await gw.waitForLog((l) => l.msg === 'state.store')
  t.match(line, { level: 40, event: 'state.store', mode: 'degraded' })
  t.type(line.detail, 'string')
  t.equal((await get(gw.url, '/p/x')).status, 200, 'onStoreError: allow still serves')
  await new Promise((r) => setTimeout(r, 1500))
  t.equal(gw.logs().filter((l) => l.msg === 'state.store').length, 1, 'logged once, not per reconnect attempt')
  t.notMatch(gw.output(), password, 'the Redis password is never logged')
})

t.test('a store refusal after authentication still names who was refused', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const secret = testSecret('audit-worker')
  const gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
state: { maxEntries: 1 }
upstreams:
  app: { url: ${backend.url} }
schemes:
  workers: { type: worker-v1, secret: "\${env:AUDIT_WORKER}", roles: [worker] }
routes:
  - { prefix: /w, upstream: app, auth: [workers] }
`, { AUDIT_WORKER: secret })
  t.teardown(() => gw.stop('SIGKILL'))
  const send = (id: string) => fetch(gw.url + '/w/x', { headers: signWorkerV1({ id, secret }) })
  t.equal((await send('w1')).status, 200)
  const full = await send('w2')
  t.equal(full.status, 503, 'the replay cache is full')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === full.headers.get('x-request-id'))
  t.match(line, { event: 'deny', reason: 'STATE_UNAVAILABLE', identity: 'workers:w2', authMethod: 'workers', route: '/w' })
  t.match(String(line.fp), /^key:[0-9a-f]{6}$/)
})
