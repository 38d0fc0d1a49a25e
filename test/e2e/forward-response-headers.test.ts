// The upstream's response headers as the client gets them: the gateway's own x-request-id and rate-limit
// headers replace any the upstream sent under those names (one line each), a repeated header's lines all
// arrive in their order, and hop-by-hop and Connection-named headers stay behind.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startGateway, testSecret, type RunningGateway } from './harness.js'
import { rawGet } from './raw-http.js'

const TOKEN = testSecret('respHdrTok')
let upstream: Server
let gw: RunningGateway

t.before(async () => {
  upstream = createServer((req, res) => {
    req.resume()
    res.writeHead(200, [
      'X-Request-Id', 'upstream-own-id',
      'Set-Cookie', 'a=1',
      'X-RateLimit-Limit', '999',
      'Connection', 'x-hop',
      'X-Hop', 'secret-hop',
      'set-cookie', 'b=2',
      'x-request-id', 'upstream-second-id',
      'Content-Type', 'text/plain',
    ])
    res.end('ok')
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const port = (upstream.address() as AddressInfo).port
  gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  up: { url: "http://127.0.0.1:${port}", timeout: 5s }
identities:
  - { name: ops, bearer: "\${env:TOKEN}" }
routes:
  - { path: /limited, upstream: up, auth: [bearer], rateLimit: { max: 50, window: 1m } }
  - { path: /open, upstream: up, public: true }
`, { TOKEN }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  await new Promise<void>((r) => upstream?.close(() => r()))
})

/** The response's header lines, names lower-cased, in the order they came. */
function lines(raw: Buffer): [string, string][] {
  const head = raw.toString('latin1').split('\r\n\r\n')[0]!
  return head.split('\r\n').slice(1).map((l) => {
    const i = l.indexOf(':')
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()]
  })
}

t.test('the gateway\'s x-request-id and rate-limit headers replace the upstream\'s; repeats and order kept', async (t) => {
  const res = await rawGet(gw.port, '/limited', [`Authorization: Bearer ${TOKEN}`])
  t.equal(res.status, 200)
  const got = lines(res.raw)
  const ids = got.filter(([n]) => n === 'x-request-id')
  t.equal(ids.length, 1, 'one x-request-id line')
  t.not(ids[0]![1], 'upstream-own-id')
  t.not(ids[0]![1], 'upstream-second-id')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.path === '/limited', 10_000)
  t.equal(ids[0]![1], line.reqId, 'the audit line\'s reqId')
  t.same(got.filter(([n]) => n === 'x-ratelimit-limit'), [['x-ratelimit-limit', '50']], 'the route\'s limit, once')
  t.same(got.filter(([n]) => n === 'set-cookie'), [['set-cookie', 'a=1'], ['set-cookie', 'b=2']], 'both cookies, in order')
  t.notOk(got.some(([n]) => n === 'x-hop'), 'a Connection-named header stays behind')
  t.notOk(res.raw.toString('latin1').includes('secret-hop'))
  t.equal(res.body.toString(), 'ok')
})

t.test('without a rate limit, the upstream\'s own rate-limit header passes; x-request-id is still the gateway\'s', async (t) => {
  const res = await rawGet(gw.port, '/open', [])
  t.equal(res.status, 200)
  const got = lines(res.raw)
  t.same(got.filter(([n]) => n === 'x-ratelimit-limit'), [['x-ratelimit-limit', '999']])
  t.equal(got.filter(([n]) => n === 'x-request-id').length, 1)
  t.notOk(res.raw.toString('latin1').includes('upstream-own-id'))
})
