// Black-box: what reaches the backend (DESIGN §3.6) — spoofed x-auth-* never, hop-by-hop never,
// credentials only with `credentials: keep`, identity headers set once — and how bodies and
// upstream failures are handled: SSE streamed, request bodies streamed, 502 / 504 / 413, websockets.
import t from 'tap'
import { createHash } from 'node:crypto'
import { createServer, request, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { rawGet, rawRequest, send } from './raw-http.js'

const TOKEN = testSecret('fwdTok')
const KEY = testSecret('fwdKey')
const WRONG = testSecret('fwdWrong')
const SECRETS = [TOKEN, KEY, WRONG]
const fp = (s: string) => 'token:' + createHash('sha256').update(s).digest('hex').slice(0, 6)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A backend that records when each request's body starts arriving, to tell streaming from buffering. */
interface Streamer {
  server: Server
  url: string
  seen: Map<string, { firstDataAt?: number; bytes: number; done: boolean; sha?: string }>
}
async function startStreamer(): Promise<Streamer> {
  const seen: Streamer['seen'] = new Map()
  const server = createServer((req, res) => {
    const rec: { firstDataAt?: number; bytes: number; done: boolean; sha?: string } = { bytes: 0, done: false }
    seen.set(req.url!, rec)
    const hash = createHash('sha256')
    req.on('data', (c: Buffer) => {
      rec.firstDataAt ??= Date.now()
      rec.bytes += c.length
      hash.update(c)
    })
    req.on('end', () => {
      rec.done = true
      rec.sha = hash.digest('hex')
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ bytes: rec.bytes }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

const config = (backend: string, streamer: string, deadPort: number) => `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 600kb
upstreams:
  be: { url: "${backend}", timeout: 10s }
  impatient: { url: "${backend}", timeout: 300ms }
  streamer: { url: "${streamer}", timeout: 10s }
  dead: { url: "http://127.0.0.1:${deadPort}", timeout: 2s }
identities:
  - name: orchestratord
    roles: [control-plane, ops]
    bearer: "\${env:TOKEN}"
  - name: coordinator
    roles: [coordinator]
    apiKey: "\${env:KEY}"
routes:
  - prefix: /public/
    upstream: be
    public: true
  - prefix: /auth/
    upstream: be
    auth: [bearer, apiKey]
  - prefix: /keep/
    upstream: be
    auth: [bearer, apiKey]
    forward: { credentials: keep }
  - prefix: /ws/
    upstream: be
    auth: [bearer]
    websocket: true
  - prefix: /stream/
    upstream: streamer
    public: true
  - prefix: /impatient/
    upstream: impatient
    public: true
  - prefix: /dead/
    upstream: dead
    public: true
`

let be: Backend
let streamer: Streamer
let gw: RunningGateway
/** The backend's ends of websocket tunnels: its server.close() would wait for them forever. */
const tunnels = new Set<Socket>()
t.before(async () => {
  be = await startBackend()
  be.server.on('upgrade', (_req, socket: Socket) => {
    tunnels.add(socket)
    socket.on('close', () => tunnels.delete(socket))
  })
  streamer = await startStreamer()
  gw = await startGateway(config(be.url, streamer.url, await closedPort()), { TOKEN, KEY }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  for (const s of tunnels) s.destroy()
  await be?.close()
  streamer?.server.closeAllConnections()
  await new Promise((r) => streamer?.server.close(r))
})

const received = (path: string) => be.requests.filter((r) => r.url === path)
const norm = (name: string) => name.toLowerCase().replace(/_/g, '-')
/** Values of a header in the backend's rawHeaders, matching any case and `_` for `-`. */
const rawValues = (rawHeaders: string[], name: string) => rawHeaders.flatMap((h, i) => (i % 2 === 0 && norm(h) === name ? [rawHeaders[i + 1]!] : []))

const SPOOF = [
  'x-auth-identity: admin',
  'X-AUTH-ROLES: admin,root',
  'x_auth_identity: admin',
  'X_Auth_Method: bearer',
  'x-auth_fingerprint: token:000000',
  'X-Auth-Identity: admin2',
  'X-Auth-Assertion: forged',
  'x-auth-anything: forged',
]

t.test('spoofed x-auth-* headers never reach the backend on a public route', async (t) => {
  const path = '/public/spoof'
  const r = await rawRequest(gw.port, [`GET ${path} HTTP/1.1`, 'Host: x', ...SPOOF, 'Connection: close, x-auth-identity', '', ''].join('\r\n'))
  t.equal(r.status, 200)
  const rec = received(path)[0]
  t.ok(rec, 'forwarded')
  const auth = (rec?.rawHeaders ?? []).filter((h, i) => i % 2 === 0 && norm(h).startsWith('x-auth-'))
  t.same(auth, [], 'no x-auth-* header of any spelling')
})

t.test('spoofed x-auth-* headers on an authenticated route: only the gateway\'s values, set once', async (t) => {
  for (const [i, credential] of [`Authorization: Bearer ${TOKEN}`, `x-api-key: ${KEY}`].entries()) {
    const path = `/auth/spoof-${i}`
    const r = await rawRequest(gw.port, [`GET ${path} HTTP/1.1`, 'Host: x', ...SPOOF, credential, 'Connection: x-auth-identity, X-Auth-Roles', 'Connection: close', '', ''].join('\r\n'))
    t.equal(r.status, 200)
    const rec = received(path)[0]
    const rawHeaders = rec?.rawHeaders ?? []
    const who = i === 0 ? { identity: 'orchestratord', method: 'bearer', roles: 'control-plane,ops', fp: fp(TOKEN) } : { identity: 'coordinator', method: 'apiKey', roles: 'coordinator', fp: fp(KEY) }
    t.same(rawValues(rawHeaders, 'x-auth-identity'), [who.identity], 'exactly one x-auth-identity, the gateway\'s')
    t.same(rawValues(rawHeaders, 'x-auth-method'), [who.method])
    t.same(rawValues(rawHeaders, 'x-auth-roles'), [who.roles], 'roles comma-separated without spaces')
    t.same(rawValues(rawHeaders, 'x-auth-fingerprint'), [who.fp])
    t.same(rawValues(rawHeaders, 'x-auth-assertion'), [], 'no forged assertion')
    t.same(rawValues(rawHeaders, 'x-auth-anything'), [])
    const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === r.headers['x-request-id'], 10_000)
    t.equal(line.fp, rawValues(rawHeaders, 'x-auth-fingerprint')[0], 'x-auth-fingerprint equals the audit line\'s fp')
    t.equal(line.identity, who.identity)
  }
})

t.test('hop-by-hop headers and headers named in Connection are dropped', async (t) => {
  const path = '/public/hop'
  const r = await rawRequest(
    gw.port,
    [
      `GET ${path} HTTP/1.1`,
      'Host: gateway.example',
      'Connection: close, X-Drop-Me, x-also-drop',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Trailer: X-T',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Proxy-Connection: keep-alive',
      'Upgrade: h2c',
      'X-Drop-Me: 1',
      'X-Also-Drop: 1',
      'X-Keep-Me: 2',
      'X-Forwarded-For: 6.6.6.6',
      'X-Forwarded-Proto: https',
      '',
      '',
    ].join('\r\n'),
  )
  t.equal(r.status, 200)
  const h = received(path)[0]?.headers ?? {}
  for (const name of ['keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'upgrade', 'x-drop-me', 'x-also-drop']) t.equal(h[name], undefined, `${name} dropped`)
  t.notMatch(String(h.connection ?? ''), /x-drop-me|close/i, 'the client\'s Connection is not passed on')
  t.equal(h['x-keep-me'], '2', 'an end-to-end header is kept')
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the gateway\'s view (trustProxy off), not the client\'s')
  t.equal(h['x-forwarded-proto'], 'http')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === r.headers['x-request-id'], 10_000)
  t.equal(line.ip, '127.0.0.1', 'the audit ip is the socket\'s')
})

t.test('credentials are stripped by default, kept with forward: { credentials: keep }', async (t) => {
  const pub = '/public/creds'
  await rawGet(gw.port, pub, [`Authorization: Bearer ${TOKEN}`, 'x-worker-signature: abc', 'signature: sig1=:AAAA:', 'signature-input: sig1=()'])
  const ph = received(pub)[0]?.headers ?? {}
  for (const name of ['authorization', 'x-worker-signature', 'signature', 'signature-input']) t.equal(ph[name], undefined, `public route: ${name} stripped`)

  await rawGet(gw.port, '/public/creds-key', [`x-api-key: ${KEY}`])
  t.equal(received('/public/creds-key')[0]?.headers['x-api-key'], undefined, 'public route: x-api-key stripped')

  await rawGet(gw.port, '/auth/strip-bearer', [`Authorization: Bearer ${TOKEN}`])
  t.equal(received('/auth/strip-bearer')[0]?.headers.authorization, undefined, 'authenticated route: Authorization stripped')
  await rawGet(gw.port, '/auth/strip-key', [`X-Api-Key: ${KEY}`])
  t.equal(received('/auth/strip-key')[0]?.headers['x-api-key'], undefined, 'authenticated route: x-api-key stripped')

  await rawGet(gw.port, '/keep/bearer', [`Authorization: Bearer ${TOKEN}`])
  const kb = received('/keep/bearer')[0]?.headers ?? {}
  t.equal(kb.authorization, `Bearer ${TOKEN}`, 'keep: Authorization forwarded')
  t.equal(kb['x-auth-identity'], 'orchestratord', 'keep: identity still set')
  await rawGet(gw.port, '/keep/key', [`x-api-key: ${KEY}`])
  t.equal(received('/keep/key')[0]?.headers['x-api-key'], KEY, 'keep: x-api-key forwarded')
})

t.test('server-sent events arrive one by one, as the backend writes them', async (t) => {
  const chunks: { at: number; text: string }[] = []
  const res = await new Promise<{ status: number; type: string; endAt: number }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path: '/public/sse', agent: false, timeout: 5000 }, (res) => {
      res.setEncoding('utf8')
      res.on('data', (d: string) => chunks.push({ at: Date.now(), text: d }))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), endAt: Date.now() }))
    })
    req.on('timeout', () => req.destroy(new Error('SSE did not end within 5 s')))
    req.on('error', reject)
    req.end()
  })
  t.equal(res.status, 200)
  t.match(res.type, /^text\/event-stream/)
  t.same(chunks.map((c) => c.text).join(''), 'data: event-0\n\ndata: event-1\n\ndata: event-2\n\n')
  t.match(chunks[0]?.text ?? '', /^data: event-0\n\n/, 'the first chunk starts with the first event')
  t.ok(chunks.length >= 2, `several chunks (${chunks.length})`)
  // The backend writes every 150 ms, so a streamed first event comes ~300 ms before the end; a
  // buffered response would deliver everything at once.
  t.ok(res.endAt - chunks[0]!.at >= 100, `the first event came ${res.endAt - chunks[0]!.at} ms before the end`)
})

t.test('a 512 KB chunked request body reaches the backend intact', async (t) => {
  const body = Buffer.alloc(512 * 1024)
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 10)) & 0xff
  const r = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path: '/public/upload', method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' }, timeout: 10_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('upload timed out')))
    req.on('error', reject)
    for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024))
    req.end()
  })
  t.equal(r, 200)
  const rec = received('/public/upload')[0]
  t.equal(rec?.headers['transfer-encoding'], 'chunked', 'sent on chunked')
  t.equal(rec?.body.length, body.length, 'every byte arrived')
  t.equal(sha(rec?.body ?? Buffer.alloc(0)), sha(body), 'byte-identical')
})

t.test('request bodies are streamed: the backend sees the first bytes before the client has finished', async (t) => {
  const path = '/stream/upload'
  const part = Buffer.alloc(64 * 1024, 0x61)
  const req = request({ host: '127.0.0.1', port: gw.port, path, method: 'POST', agent: false, timeout: 10_000 })
  const done = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy(new Error('upload timed out')))
    req.on('error', reject)
  })
  req.write(part)
  let early = false
  for (let i = 0; i < 100 && !early; i++) {
    await sleep(20)
    early = (streamer.seen.get(path)?.bytes ?? 0) > 0
  }
  t.ok(early, 'the first chunk reached the backend while the request was still open')
  t.equal(streamer.seen.get(path)?.done ?? false, false, 'and the backend is still waiting for the rest')
  req.write(part)
  req.end(part)
  t.equal(await done, 200)
  t.equal(streamer.seen.get(path)?.bytes, 3 * part.length)
})

t.test('Expect: 100-continue is answered and the body forwarded', async (t) => {
  const path = '/public/expect'
  const r = await rawRequest(gw.port, [`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`, 'hello'], { gapMs: 100, method: 'POST' })
  t.equal(r.status, 200)
  t.equal(received(path)[0]?.body.toString(), 'hello')
})

const LEAKS = /ECONN|EPIPE|UND_ERR|socket|other side closed|hang up|Headers? ?Timeout|connect|127\.0\.0\.1/i

t.test('upstream refused → 502 UPSTREAM_UNAVAILABLE; reset → 502; slower than its timeout → 504', async (t) => {
  const cases: [string, number, string][] = [
    ['/dead/x', 502, 'UPSTREAM_UNAVAILABLE'],
    ['/public/reset', 502, 'UPSTREAM_UNAVAILABLE'],
    ['/impatient/slow?ms=1500', 504, 'UPSTREAM_TIMEOUT'],
  ]
  for (const [path, status, code] of cases) {
    const r = await send(gw.url, path)
    t.equal(r.status, status, `${path} → ${status}`)
    t.match(String(r.headers['content-type']), /^application\/json/)
    t.same(Object.keys(r.json ?? {}).sort(), ['code', 'error', 'requestId'])
    t.equal(r.json?.code, code)
    t.notMatch(r.body, LEAKS, 'no upstream error text in the body')
    const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === r.json?.requestId, 10_000)
    t.match(line, { status, reason: code, upstream: path.startsWith('/dead') ? 'dead' : path.startsWith('/impatient') ? 'impatient' : 'be' })
  }
  t.equal(received('/public/reset').length, 1, 'the reset request did reach the backend')
})

t.test('a body over bodyLimit → 413 BODY_TOO_LARGE (Content-Length and chunked)', async (t) => {
  const before = be.requests.length
  const cl = await rawRequest(gw.port, `POST /public/big-cl HTTP/1.1\r\nHost: x\r\nContent-Length: ${700 * 1024}\r\n\r\n` + 'a'.repeat(1024), { method: 'POST' })
  t.equal(cl.status, 413)
  t.equal(cl.json?.code, 'BODY_TOO_LARGE')
  const clAuth = await rawRequest(gw.port, `POST /auth/big-cl HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${700 * 1024}\r\n\r\n`, { method: 'POST' })
  t.equal(clAuth.status, 413, 'also on an authenticated route')

  const chunk = Buffer.alloc(100 * 1024, 0x62)
  const head = `POST /public/big-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
  const parts: (string | Buffer)[] = [head]
  for (let i = 0; i < 7; i++) parts.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n')
  parts.push('0\r\n\r\n')
  const ch = await rawRequest(gw.port, parts, { method: 'POST' })
  t.equal(ch.status, 413)
  t.equal(ch.json?.code, 'BODY_TOO_LARGE')
  t.same(Object.keys(ch.json ?? {}).sort(), ['code', 'error', 'requestId'])
  await sleep(100)
  t.same(be.requests.slice(before).map((r) => r.url), [], 'the backend never received a complete over-limit request')
})

/**
 * A raw upgrade exchange: the response head, then (after a 101) what the tunnel echoes for `payload`.
 * With `keepOpen`, a tunnelled socket is handed back open instead of destroyed.
 */
function upgrade(lines: string[], path: string, payload: string, keepOpen = false): Promise<{ head: string; echoed: string; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect(gw.port, '127.0.0.1')
    let buf = ''
    let head: string | undefined
    let settled = false
    const finish = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!keepOpen || head === undefined || !head.startsWith('HTTP/1.1 101')) socket.destroy()
      resolve({ head: head ?? buf, echoed: head === undefined ? '' : buf.slice(buf.indexOf('\r\n\r\n') + 4), socket })
    }
    const timer = setTimeout(finish, 10_000)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => {
      buf += d
      if (head === undefined && buf.includes('\r\n\r\n')) {
        head = buf.slice(0, buf.indexOf('\r\n\r\n'))
        if (!head.startsWith('HTTP/1.1 101')) return setTimeout(finish, 50)
        socket.write(payload)
      }
      if (head !== undefined && buf.includes(`echo:${payload}`)) finish()
    })
    socket.on('error', finish)
    socket.on('close', finish)
    socket.write([`GET ${path} HTTP/1.1`, 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', ...lines, '', ''].join('\r\n'))
  })
}

t.test('websocket: an authenticated upgrade on a websocket route reaches the backend', async (t) => {
  const { head, echoed, socket } = await upgrade([`Authorization: Bearer ${TOKEN}`], '/ws/session-1', 'ping-1', true)
  t.match(head, /^HTTP\/1\.1 101/)
  t.match(echoed, 'echo:ping-1', 'data flows through the tunnel both ways')
  // The backend hangs up: the client's connection is closed too.
  const closed = new Promise<boolean>((r) => {
    const timer = setTimeout(() => r(false), 10_000)
    socket.once('close', () => {
      clearTimeout(timer)
      r(true)
    })
    socket.resume()
  })
  t.equal(tunnels.size, 1, 'one tunnel open at the backend')
  for (const s of tunnels) s.destroy()
  t.equal(await closed, true, 'the gateway closed the client side when the backend closed')
  socket.destroy()
  const rec = received('/ws/session-1')[0]
  t.equal(rec?.headers.upgrade, 'websocket')
  t.equal(rec?.headers['x-auth-identity'], 'orchestratord')
  t.equal(rec?.headers.authorization, undefined, 'the credential is stripped')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.path === '/ws/session-1', 10_000)
  t.match(line, { event: 'allow', identity: 'orchestratord', status: 101 })
})

t.test('websocket: without or with a wrong credential → 401, nothing forwarded', async (t) => {
  const before = be.requests.length
  const none = await upgrade([], '/ws/session-2', 'x')
  t.match(none.head, /^HTTP\/1\.1 401/)
  t.match(none.head, /content-type: application\/json/i)
  t.match(none.head, /www-authenticate: Bearer/i)
  const wrong = await upgrade([`Authorization: Bearer ${WRONG}`], '/ws/session-3', 'x')
  t.match(wrong.head, /^HTTP\/1\.1 401/)
  t.equal(wrong.echoed.includes('INVALID_CREDENTIALS') || wrong.head.includes('INVALID_CREDENTIALS'), true)
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('an Upgrade on a non-websocket route is forwarded as a plain request without Upgrade/Connection', async (t) => {
  for (const [path, lines] of [
    ['/auth/not-ws', [`Authorization: Bearer ${TOKEN}`]],
    ['/public/not-ws', []],
  ] as const) {
    const { head } = await upgrade([...lines], path, 'x')
    t.match(head, /^HTTP\/1\.1 200/, `${path}: a plain 200, not 101`)
    const rec = received(path)[0]
    t.ok(rec, `${path}: forwarded`)
    t.equal(rec?.headers.upgrade, undefined, 'no Upgrade')
    t.notMatch(String(rec?.headers.connection ?? ''), /upgrade/i, 'no Connection: upgrade')
  }
  t.equal(received('/auth/not-ws')[0]?.headers['x-auth-identity'], 'orchestratord')
})

t.test('no secret appears in the gateway\'s output', async (t) => {
  await rawGet(gw.port, '/auth/x', [`Authorization: Bearer ${WRONG}`])
  await rawGet(gw.port, '/auth/x', [`x-api-key: ${WRONG}`])
  t.equal(await gw.stop(), 0)
  for (const s of SECRETS) t.notOk(gw.output().includes(s), `${s.slice(0, 8)}… not in output`)
})
