// Regressions for the attack of issue 10, through the real gateway: identities that collided across
// methods (DESIGN §3.3), refused credentials whose claimed name was logged as `identity` (§6), a
// bearer token with a trailing U+00A0 (§4.1), signatures with too many components or made for
// another gateway (§4.4, server.authorities).
import t from 'tap'
import { SignJWT } from 'jose'
import { signRfc9421, signWorkerV1 } from '../../src/client/index.js'
import { deriveKey } from '../../src/auth/derive.js'
import { generateX25519 } from '../../src/auth/join-wrap.js'
import { hmacSha256, signatureFieldValues } from '../../src/auth/signature-base.js'
import { serializeInnerList, type InnerList, type Item } from 'structured-headers'
import { runCli, startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { rawGet, rawRequest, send } from './raw-http.js'

const OPS_TOKEN = testSecret('opstoken')
const MASTER = testSecret('master')
const PSK = testSecret('joinpsk')
const WORKER_SECRET = testSecret('workers')
const JOB_SECRET = testSecret('jobs')
const env = { OPS_TOKEN, MASTER, JOIN_PSK: PSK, WORKER_SECRET, JOB_SECRET }

let backend: Backend
let gw: RunningGateway

function config(backendUrl: string, server = ''): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
${server}upstreams:
  app: { url: "${backendUrl}" }
identities:
  - name: ops
    roles: [worker]
    bearer: "\${env:OPS_TOKEN}"
schemes:
  signed:
    type: rfc9421
    derive: "\${env:MASTER}"
    roles: [worker]
  workers:
    type: worker-v1
    secret: "\${env:WORKER_SECRET}"
    roles: [worker]
  jobs:
    type: jwt
    secret: "\${env:JOB_SECRET}"
    roles: [worker]
join:
  psk: "\${env:JOIN_PSK}"
  scheme: signed
defaults:
  authFailures: false
routes:
  - { prefix: /limited/, upstream: app, auth: [bearer, signed], roles: [worker], rateLimit: { max: 1, window: 1m, by: identity } }
  - { prefix: /any/, upstream: app, auth: [bearer, signed, workers, jobs], rateLimit: false }
`
}

t.before(async () => {
  backend = await startBackend()
  gw = await startGateway(config(backend.url), env)
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

function signed(keyId: string, secret: string, path: string, extra: { components?: string[]; headers?: Record<string, string>; host?: string } = {}) {
  const host = extra.host ?? new URL(gw.url).host
  const headers = { host, ...extra.headers }
  const sig = signRfc9421({ keyId, secret, method: 'GET', url: `http://${host}${path}`, headers, ...(extra.components ? { components: extra.components } : {}) })
  return { ...headers, ...sig } as Record<string, string>
}

async function auditOf(reqId: unknown): Promise<Record<string, unknown>> {
  return gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId)
}

t.test('join --key-id ops reached the backend as the bearer identity ops and shared its rate-limit bucket', async (t) => {
  const asBearer = await send(gw.url, '/limited/1', { headers: { authorization: `Bearer ${OPS_TOKEN}` } })
  t.equal(asBearer.status, 200)
  t.equal(backend.requests.at(-1)!.headers['x-auth-identity'], 'ops')

  const joined = await runCli(['join', '--url', gw.url, '--key-id', 'ops', '--psk-env', 'JOIN_PSK'], env)
  t.equal(joined.code, 0, joined.stderr)
  const key = joined.stdout.trim()
  t.equal(key, deriveKey(MASTER, 'ops'))
  t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.route === '/_portcullis/join' && l.event === 'allow'), { identity: 'join:ops', authMethod: 'signed' })

  const before = backend.requests.length
  const asJoined = await send(gw.url, '/limited/2', { headers: signed('ops', key, '/limited/2') })
  t.equal(asJoined.status, 200, 'its own bucket: not the bearer identity ops, which already used its one request')
  t.equal(backend.requests.length, before + 1)
  t.equal(backend.requests.at(-1)!.headers['x-auth-identity'], 'signed:ops')
  t.match(await auditOf(asJoined.headers['x-request-id']), { event: 'allow', identity: 'signed:ops', authMethod: 'signed' })

  const bearerAgain = await send(gw.url, '/limited/3', { headers: { authorization: `Bearer ${OPS_TOKEN}` } })
  t.equal(bearerAgain.status, 429, 'the bearer identity ops still has its own, spent, bucket')
})

t.test('worker-v1 and jwt identities were bare names another method could also produce', async (t) => {
  const w = await send(gw.url, '/any/w', { headers: { ...signWorkerV1({ id: 'ops', secret: WORKER_SECRET }) } })
  t.equal(w.status, 200)
  t.equal(backend.requests.at(-1)!.headers['x-auth-identity'], 'workers:ops')

  const now = Math.floor(Date.now() / 1000)
  const jwt = await new SignJWT({ sub: 'ops', iat: now, exp: now + 300 }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(JOB_SECRET))
  const j = await send(gw.url, '/any/j', { headers: { authorization: `Bearer ${jwt}` } })
  t.equal(j.status, 200)
  t.equal(backend.requests.at(-1)!.headers['x-auth-identity'], 'jobs:ops')
})

t.test('a join keyid holding ":" was accepted → 400 BAD_REQUEST', async (t) => {
  const url = `${gw.url}/_portcullis/join`
  for (const keyid of ['a:b', 'signed:ops']) {
    const body = JSON.stringify({ keyid, publicKey: generateX25519().publicKey })
    const headers = { 'content-type': 'application/json', ...signRfc9421({ keyId: 'join', secret: PSK, method: 'POST', url, body }) } as Record<string, string>
    const r = await send(gw.url, '/_portcullis/join', { method: 'POST', headers, body })
    t.equal(r.status, 400, keyid)
    t.equal(r.json?.code, 'BAD_REQUEST', keyid)
    t.match(r.json?.error, /keyid/, keyid)
  }
})

t.test('a refused worker-v1 request logged the claimed x-worker-id as its identity', async (t) => {
  const forged = { 'x-worker-id': 'victim', 'x-worker-timestamp': String(Date.now()), 'x-worker-signature': '0'.repeat(64) }
  const r = await send(gw.url, '/any/x', { headers: forged })
  t.equal(r.status, 401)
  const line = await auditOf(r.headers['x-request-id'])
  t.match(line, { event: 'deny', reason: 'INVALID_SIGNATURE', authMethod: 'workers', claimed: 'victim' })
  t.equal(line.identity, null)
})

t.test('a refused rfc9421 keyid and a refused join keyid are claimed, not identities', async (t) => {
  const r = await send(gw.url, '/any/x', { headers: signed('victim', 'not-the-key-of-victim-0123456789abcdef', '/any/x') })
  t.equal(r.status, 401)
  const line = await auditOf(r.headers['x-request-id'])
  t.match(line, { reason: 'INVALID_SIGNATURE', claimed: 'victim' })
  t.equal(line.identity, null)

  const url = `${gw.url}/_portcullis/join`
  const body = JSON.stringify({ keyid: 'victim' })
  const headers = { 'content-type': 'application/json', ...signRfc9421({ keyId: 'join', secret: 'wrong-psk-0123456789abcdef0123456789', method: 'POST', url, body }) } as Record<string, string>
  const j = await send(gw.url, '/_portcullis/join', { method: 'POST', headers, body })
  t.equal(j.status, 401)
  const jl = await auditOf(j.headers['x-request-id'])
  t.match(jl, { reason: 'INVALID_SIGNATURE', claimed: 'victim' })
  t.equal(jl.identity, null)
})

t.test('Authorization: Bearer <token> followed by U+00A0 was accepted', async (t) => {
  const before = backend.requests.length
  // The byte 0xA0 itself (obs-text), which Node hands over as U+00A0 and String#trim() removed.
  const head = `GET /any/nbsp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nAuthorization: Bearer ${OPS_TOKEN}\u00a0\r\nConnection: close\r\n\r\n`
  const nbsp = await rawRequest(gw.port, Buffer.from(head, 'latin1'))
  t.equal(nbsp.status, 401)
  t.equal(nbsp.json?.code, 'INVALID_CREDENTIALS')
  t.equal(backend.requests.length, before, 'not forwarded')

  const tabs = await rawGet(gw.port, '/any/tabs', [`Authorization: \tbEaReR \t${OPS_TOKEN}\t `])
  t.equal(tabs.status, 200, 'scheme word any case, spaces and tabs around trimmed')

  for (const line of ['Authorization: Bearer', 'Authorization: Bearer \t ', 'Authorization:']) {
    const r = await rawGet(gw.port, '/any/empty', [line])
    t.equal(r.json?.code, 'MISSING_CREDENTIALS', JSON.stringify(line))
  }
  const notB64 = await rawGet(gw.port, '/any/x', ['Authorization: Bearer a b'])
  t.equal(notB64.json?.code, 'INVALID_CREDENTIALS', 'a token that is not b64token')
})

t.test('a signature covering more than 32 components was processed', async (t) => {
  const headers: Record<string, string> = {}
  for (let i = 0; i < 29; i++) headers[`x-h${i}`] = String(i)
  const components = Object.keys(headers)
  const key = deriveKey(MASTER, 'many')
  const ok = await send(gw.url, '/any/m', { headers: signed('many', key, '/any/m', { headers, components: components.slice(0, 28) }) })
  t.equal(ok.status, 200, '32 components: accepted')
  // The client library refuses to sign 33 components: build that signature by hand (RFC 9421 §2.5).
  const host = new URL(gw.url).host
  const covered: InnerList = [
    ['@method', '@authority', '@path', '@query', ...components].map((c) => [c, new Map()] as Item),
    new Map<string, string | number>([['created', Math.floor(Date.now() / 1000)], ['keyid', 'many'], ['nonce', 'n33']]),
  ]
  const lines = [`"@method": GET`, `"@authority": ${host}`, `"@path": /any/m`, `"@query": ?`, ...components.map((c) => `"${c}": ${headers[c]}`)]
  const base = [...lines, '"@signature-params": ' + serializeInnerList(covered)].join('\n')
  const f = signatureFieldValues('sig1', covered, hmacSha256(Buffer.from(key), base))
  const over = await send(gw.url, '/any/m', { headers: { host, ...headers, 'signature-input': f.signatureInput, signature: f.signature } })
  t.equal(over.status, 401, '33 components: refused')
  t.equal(over.json?.code, 'INVALID_SIGNATURE')
})

t.test('a signature made for another gateway was accepted (server.authorities)', async (t) => {
  const other = await startGateway(config(backend.url, '  authorities: [gw.internal, "api.example:8443"]\n'), env)
  t.teardown(() => other.stop())
  const key = deriveKey(MASTER, 'w1')
  const at = (host: string) => {
    const sig = signRfc9421({ keyId: 'w1', secret: key, method: 'GET', url: `http://${host}/any/a`, headers: { host } })
    return send(other.url, '/any/a', { headers: { host, ...sig } as Record<string, string> })
  }
  t.equal((await at('GW.internal:9000')).status, 200, 'no port in the entry: any port, any case')
  t.equal((await at('gw.internal')).status, 200)
  t.equal((await at('api.example:8443')).status, 200)
  const wrongPort = await at('api.example:443')
  t.equal(wrongPort.status, 401, 'a port in the entry: that port only')
  t.equal(wrongPort.json?.code, 'INVALID_SIGNATURE')
  const elsewhere = await at(new URL(other.url).host)
  t.equal(elsewhere.status, 401, 'not one of the authorities')
  t.equal(elsewhere.json?.code, 'INVALID_SIGNATURE')
})
