// DESIGN §8 through real sockets: with forward.assertion, every forwarded request of an authenticated
// identity carries x-auth-assertion, which a stand-in backend checks with verifyAssertion and the
// admin /jwks.json. A captured assertion replayed to the backend for another request is refused.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { runCli, startGateway, testSecret, writeConfig, type RunningGateway } from './harness.js'
import { verifyAssertion, type AssertionClaims } from '../../src/client/index.js'
import { computeContentDigest } from '../../src/auth/content-digest.js'
import { signRfc9421 } from '../../src/client/rfc9421.js'

const TOKEN = testSecret('ops')
const KEY7 = testSecret('worker7')
const dir = mkdtempSync(join(tmpdir(), 'portcullis-assertion-'))
const keyFile = join(dir, 'assertion.key')
const PEM = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
writeFileSync(keyFile, PEM)
const PEM_BODY = PEM.split('\n')[1]!

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
  claims?: AssertionClaims
  refusal?: string
}

/** A backend that trusts nothing on its network: it answers 401 unless the assertion verifies. */
function startVerifyingBackend(audience: string, jwks: () => { keys: object[] } | undefined): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) }
      try {
        s.claims = verifyAssertion(req.headers['x-auth-assertion'], { jwks: jwks() as never, audience, method: req.method!, pathAndQuery: req.url!, body: s.body })
      } catch (err) {
        s.refusal = (err as Error).message
      }
      seen.push(s)
      res.writeHead(s.claims ? 200 : 401, { 'content-type': 'application/json' })
      res.end(JSON.stringify(s.claims ?? { refusal: s.refusal }))
    })
  })
  server.on('upgrade', (req, socket: Socket) => {
    const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.alloc(0) }
    try {
      s.claims = verifyAssertion(req.headers['x-auth-assertion'], { jwks: jwks() as never, audience, method: req.method!, pathAndQuery: req.url! })
    } catch (err) {
      s.refusal = (err as Error).message
    }
    seen.push(s)
    socket.end(s.claims ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' : 'HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n')
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server })))
}

let gw: RunningGateway
let backend: Awaited<ReturnType<typeof startVerifyingBackend>>
let jwks: { keys: Array<Record<string, unknown>> } | undefined

t.before(async () => {
  backend = await startVerifyingBackend('orchestrator', () => jwks)
  gw = await startGateway(
    `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 64kb }
admin: { listen: 127.0.0.1:0 }
upstreams:
  orchestrator: { url: "${backend.url}/base" }
identities:
  - { name: orchestratord, roles: [control-plane, admin], bearer: "\${env:OPS_TOKEN}" }
schemes:
  signed:
    type: rfc9421
    keys: { worker-7: "\${env:WORKER_7_KEY}" }
    roles: [worker]
routes:
  - { path: /health, upstream: orchestrator, public: true }
  - { prefix: /items, upstream: orchestrator, auth: [bearer] }
  - { prefix: /pools/, upstream: orchestrator, auth: [signed] }
  - { path: /ws, upstream: orchestrator, auth: [bearer], websocket: true }
forward:
  assertion:
    key: "\${file:${keyFile}}"
    ttl: 30s
`,
    { OPS_TOKEN: TOKEN, WORKER_7_KEY: KEY7 },
  )
  const res = await fetch(`${gw.adminUrl}/jwks.json`)
  jwks = (await res.json()) as typeof jwks
})
t.teardown(async () => {
  await gw?.stop()
  await new Promise((r) => backend?.server.close(r))
})

const bearer = { authorization: `Bearer ${TOKEN}` }

t.test('admin /jwks.json publishes the public key only, kid = the assertion header kid', async (t) => {
  t.equal(jwks!.keys.length, 1)
  const k = jwks!.keys[0]!
  t.match(k, { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  t.match(k.kid, /^[A-Za-z0-9_-]{43}$/)
  t.notOk('d' in k)
  const r = await fetch(`${gw.url}/items`, { headers: bearer })
  t.equal(r.status, 200)
  const header = JSON.parse(Buffer.from(backend.seen.at(-1)!.headers['x-auth-assertion']!.toString().split('.')[0]!, 'base64url').toString())
  t.match(header, { alg: 'EdDSA', kid: k.kid })
})

t.test('a GET: claims name the identity and exactly the forwarded request', async (t) => {
  const r = await fetch(`${gw.url}/items/7?x=1&y=%20`, { headers: bearer })
  t.equal(r.status, 200)
  const s = backend.seen.at(-1)!
  t.equal(s.url, '/base/items/7?x=1&y=%20')
  t.match(s.claims, { sub: 'orchestratord', roles: ['control-plane', 'admin'], amr: ['bearer'], aud: 'orchestrator', htm: 'GET', htu: '/base/items/7?x=1&y=%20' })
  t.notOk(s.claims && 'cdg' in s.claims, 'no body, no cdg')
  t.equal(typeof s.claims!.jti, 'string')
  t.equal(s.claims!.exp - s.claims!.iat, 30)
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === s.claims!.jti)
  t.match(line, { path: '/items/7', event: 'allow' }, 'jti = the audit line reqId')
})

t.test('a streamed body on a bearer route is bound by cdg (buffered while assertions are on)', async (t) => {
  const body = JSON.stringify({ big: 'x'.repeat(20_000) })
  const r = await fetch(`${gw.url}/items`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json' }, body })
  t.equal(r.status, 200)
  const s = backend.seen.at(-1)!
  t.equal(s.body.toString(), body)
  t.equal(s.claims?.cdg, computeContentDigest(body))
  t.equal(s.claims?.htm, 'POST')
})

t.test('a signed (rfc9421) request: amr = the scheme name, cdg = its verified body', async (t) => {
  const url = `${gw.url}/pools/1`
  const body = '{"job":7}'
  const r = await fetch(url, { method: 'PUT', headers: signRfc9421({ keyId: 'worker-7', secret: KEY7, method: 'PUT', url, body }) as unknown as Record<string, string>, body })
  t.equal(r.status, 200)
  t.match(backend.seen.at(-1)!.claims, { sub: 'signed:worker-7', amr: ['signed'], roles: ['worker'], htm: 'PUT', htu: '/base/pools/1', cdg: computeContentDigest(body) })
})

t.test('a captured assertion sent straight to the backend for another request is refused', async (t) => {
  await fetch(`${gw.url}/items/1`, { headers: bearer })
  const captured = backend.seen.at(-1)!.headers['x-auth-assertion'] as string
  const direct = async (method: string, path: string, body?: string) => {
    const r = await fetch(backend.url + path, { method, headers: { 'x-auth-assertion': captured }, ...(body !== undefined ? { body } : {}) })
    return { status: r.status, refusal: ((await r.json()) as { refusal?: string }).refusal }
  }
  t.same(await direct('GET', '/base/items/1'), { status: 200, refusal: undefined }, 'the same request verifies (replay within ttl is the backend\'s jti to track)')
  let r = await direct('DELETE', '/base/items/1')
  t.equal(r.status, 401)
  t.match(r.refusal, /method/)
  r = await direct('GET', '/base/items/2')
  t.equal(r.status, 401)
  t.match(r.refusal, /path/)
  r = await direct('GET', '/base/items/1?admin=1')
  t.equal(r.status, 401)
  r = await direct('POST', '/base/items/1', 'smuggled')
  t.equal(r.status, 401)
  const [h, p, s] = captured.split('.')
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), htm: 'DELETE' })).toString('base64url')
  const tampered = await fetch(backend.url + '/base/items/1', { method: 'DELETE', headers: { 'x-auth-assertion': `${h}.${forged}.${s}` } })
  t.equal(tampered.status, 401, 'a tampered method breaks the signature')
})

t.test('a websocket upgrade carries an assertion too', async (t) => {
  const head = await new Promise<string>((resolve, reject) => {
    const { port } = new URL(gw.url)
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(['GET /ws?room=1 HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', `Authorization: Bearer ${TOKEN}`, '', ''].join('\r\n'))
    })
    let got = ''
    socket.on('data', (d) => {
      got += d
      if (got.includes('\r\n\r\n')) {
        socket.destroy()
        resolve(got)
      }
    })
    socket.on('error', reject)
    socket.setTimeout(10_000, () => reject(new Error('timeout')))
  })
  t.match(head, /^HTTP\/1\.1 101/)
  t.match(backend.seen.at(-1)!.claims, { sub: 'orchestratord', htm: 'GET', htu: '/base/ws?room=1' })
})

t.test('public routes carry no assertion, and a client cannot send its own', async (t) => {
  await fetch(`${gw.url}/health`, { headers: { 'x-auth-assertion': 'forged.token.here', 'X_Auth_Assertion': 'forged' } })
  const s = backend.seen.at(-1)!
  t.equal(s.url, '/base/health')
  t.equal(s.headers['x-auth-assertion'], undefined)
  t.equal(s.headers['x_auth_assertion'], undefined)
  await fetch(`${gw.url}/items`, { headers: { ...bearer, 'x-auth-assertion': 'forged.token.here' } })
  t.ok(backend.seen.at(-1)!.claims, 'the gateway sets its own, never appends to a forged one')
})

t.test('a body over bodyLimit on an assertion route is 413 and not forwarded', async (t) => {
  const before = backend.seen.length
  const r = await fetch(`${gw.url}/items`, { method: 'POST', headers: bearer, body: 'x'.repeat(70 * 1024) })
  t.equal(r.status, 413)
  const status = await new Promise<number | string>((resolve) => {
    const req = httpRequest(`${gw.url}/items`, { method: 'POST', headers: { ...bearer, 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? 'error'))
    for (let i = 0; i < 70; i++) req.write(Buffer.alloc(1024, 120))
    req.end()
  })
  t.equal(status, 413, 'chunked, no content-length: the buffering read stops at bodyLimit')
  t.equal(backend.seen.length, before)
})

t.test('no private key, token or assertion in the gateway output', async (t) => {
  const out = gw.output()
  t.notMatch(out, PEM_BODY)
  t.notMatch(out, TOKEN)
  t.notMatch(out, KEY7)
  t.notMatch(out, /eyJ[\w-]{10,}\./)
})

t.test('config: the assertion key must be an Ed25519 private key', async (t) => {
  const ecFile = join(dir, 'ec.key')
  writeFileSync(ecFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
  const r = await runCli(['check', '--config', writeConfig(`version: 1
upstreams:
  b: { url: "http://127.0.0.1:9" }
routes:
  - { path: /x, upstream: b, public: true }
forward:
  assertion: { key: "\${file:${ecFile}}" }
`)])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /forward\.assertion\.key: must be an Ed25519 private key/)
  t.notMatch(r.stdout + r.stderr, /BEGIN/)
})
