// DESIGN §4.7 through real sockets: `portcullis join` (and the Python example) trade the PSK for the
// key `derive` gives the worker's id; that key then signs rfc9421 requests the gateway accepts.
// Refusals: replay, revoked id, no publicKey over plain HTTP, bad body, wrong PSK, wrong method.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { request as httpsRequest } from 'node:https'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli, startBackend, startGateway, testSecret, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { makePki, type TestPki } from './certs.js'
import { rawRequest } from './raw-http.js'
import { signRfc9421 } from '../../src/client/rfc9421.js'
import { generateX25519, unwrapWorkerKey } from '../../src/auth/join-wrap.js'
import { deriveKey } from '../../src/auth/derive.js'

const PSK = testSecret('joinpsk')
const MASTER = testSecret('master')
const env = { JOIN_PSK: PSK, WORKER_MASTER_KEY: MASTER }
const JOIN_PATH = '/_portcullis/join'
const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples')

let backend: Backend
let gw: RunningGateway

function config(backendUrl: string, extra = ''): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
${extra}upstreams:
  pool-manager: { url: "${backendUrl}" }
schemes:
  signed:
    type: rfc9421
    window: 60s
    derive: "\${env:WORKER_MASTER_KEY}"
    revoked: [worker-3]
    roles: [worker]
join:
  path: ${JOIN_PATH}
  psk: "\${env:JOIN_PSK}"
  scheme: signed
defaults:
  rateLimit: { max: 3, window: 1m, by: identity }
routes:
  - { prefix: /pools/, upstream: pool-manager, auth: [signed], roles: [worker], rateLimit: false }
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

interface Reply {
  status: number
  headers: Headers
  json: Record<string, unknown>
}

async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string }): Promise<Reply> {
  const res = await fetch(url, { method: init.method ?? 'POST', headers: init.headers ?? {}, ...(init.body !== undefined ? { body: init.body } : {}) })
  const text = await res.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, json }
}

/** A join request signed with `psk`, ready to send (and to send again). */
function signedJoin(body: object | string, psk = PSK, base = gw.url) {
  const url = base + JOIN_PATH
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  const headers = { 'content-type': 'application/json', ...signRfc9421({ keyId: 'join', secret: psk, method: 'POST', url, body: text }) }
  return { url, headers: headers as Record<string, string>, body: text }
}

t.test('portcullis join prints the derived key, and that key signs requests the gateway accepts', async (t) => {
  const before = backend.requests.length
  const r = await runCli(['join', '--url', gw.url, '--key-id', 'worker-9', '--psk-env', 'JOIN_PSK'], env)
  t.equal(r.code, 0, r.stderr)
  const key = r.stdout.trim()
  t.match(key, /^[0-9a-f]{64}$/)
  t.equal(key, deriveKey(MASTER, 'worker-9'), 'the key derive gives worker-9')
  t.equal(backend.requests.length, before, 'a join request is never forwarded')

  const url = `${gw.url}/pools/1?x=1`
  const body = '{"job":1}'
  const signed = await send(url, { headers: { ...signRfc9421({ keyId: 'worker-9', secret: key, method: 'POST', url, body }) }, body })
  t.equal(signed.status, 200)
  const got = backend.requests.at(-1)!
  t.equal(got.headers['x-auth-identity'], 'signed:worker-9', 'identities from a joined key are <join.scheme>:<keyid>')
  t.equal(got.headers['x-auth-method'], 'signed')
  t.equal(got.body.toString(), body)

  const sign = await runCli(['sign', '--scheme', 'rfc9421', '--key-id', 'worker-9', '--secret-env', 'WORKER_KEY', `${gw.url}/pools/2`, '--send'], { WORKER_KEY: key })
  t.equal(sign.code, 0, sign.stderr + sign.stdout)

  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.identity === 'join:worker-9')
  t.match(line, { event: 'allow', status: 200, route: JOIN_PATH, path: JOIN_PATH, authMethod: 'signed', upstream: null, reason: null })
  t.match(line.fp, /^key:[0-9a-f]{6}$/)
})

t.test('the answer: all four fields, base64url without padding; the key unwraps with our private key only', async (t) => {
  const worker = generateX25519()
  const req = signedJoin({ keyid: 'worker-10', publicKey: worker.publicKey })
  const r = await send(req.url, req)
  t.equal(r.status, 200)
  t.same(Object.keys(r.json).sort(), ['keyid', 'nonce', 'serverPublicKey', 'wrappedKey'])
  t.equal(r.headers.get('cache-control'), 'no-store')
  for (const k of ['nonce', 'serverPublicKey', 'wrappedKey']) t.match(r.json[k], /^[A-Za-z0-9_-]+$/)
  t.notMatch(JSON.stringify(r.json), deriveKey(MASTER, 'worker-10'), 'the key is not in clear')
  t.equal(unwrapWorkerKey(r.json as never, 'worker-10', worker.privateKey), deriveKey(MASTER, 'worker-10'))
})

t.test('a replayed join request is refused', async (t) => {
  const req = signedJoin({ keyid: 'worker-11', publicKey: generateX25519().publicKey })
  t.equal((await send(req.url, req)).status, 200)
  const again = await send(req.url, req)
  t.equal(again.status, 401)
  t.equal(again.json.code, 'REPLAYED')
  await gw.waitForLog((l) => l.msg === 'auth' && l.identity === 'join:worker-11' && l.event === 'replay')
})

t.test('a revoked id gets 401 KEY_REVOKED (CLI exits 1)', async (t) => {
  const r = await runCli(['join', '--url', gw.url, '--key-id', 'worker-3', '--psk-env', 'JOIN_PSK'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, /401 KEY_REVOKED/)
  t.equal(r.stdout, '')
})

t.test('without publicKey over plain HTTP: 400 BAD_REQUEST', async (t) => {
  const req = signedJoin({ keyid: 'worker-12' })
  const r = await send(req.url, req)
  t.equal(r.status, 400)
  t.equal(r.json.code, 'BAD_REQUEST')
  t.notOk('key' in r.json)
})

t.test('malformed bodies: 400 BAD_REQUEST', async (t) => {
  for (const body of ['not json', '[]', '{}', '{"keyid":"has space","publicKey":"x"}', JSON.stringify({ keyid: 'w', publicKey: 'too-short' }), JSON.stringify({ keyid: 'w', publicKey: Buffer.alloc(32).toString('base64url') })]) {
    const req = signedJoin(body)
    const r = await send(req.url, req)
    t.equal(r.status, 400, body)
    t.equal(r.json.code, 'BAD_REQUEST', body)
  }
})

t.test('wrong PSK, unsigned, tampered body, other methods', async (t) => {
  let req = signedJoin({ keyid: 'worker-13', publicKey: generateX25519().publicKey }, testSecret('wrongpsk'))
  let r = await send(req.url, req)
  t.equal(r.status, 401)
  t.equal(r.json.code, 'INVALID_SIGNATURE')
  // The keyid of a refused join is only claimed: never the audit line's identity (DESIGN §6).
  const denied = await gw.waitForLog((l) => l.msg === 'auth' && l.claimed === 'worker-13')
  t.match(denied, { event: 'deny', reason: 'INVALID_SIGNATURE', status: 401, identity: null })

  r = await send(gw.url + JOIN_PATH, { headers: { 'content-type': 'application/json' }, body: '{"keyid":"w"}' })
  t.equal(r.status, 401)
  t.equal(r.json.code, 'MISSING_CREDENTIALS')
  t.match(r.headers.get('www-authenticate'), /Signature/)

  req = signedJoin({ keyid: 'worker-14', publicKey: generateX25519().publicKey })
  r = await send(req.url, { headers: req.headers, body: req.body.replace('worker-14', 'worker-15') })
  t.equal(r.status, 401)
  t.equal(r.json.code, 'DIGEST_MISMATCH')

  r = await send(gw.url + JOIN_PATH, { method: 'GET' })
  t.equal(r.status, 405)
  t.equal(r.json.code, 'METHOD_NOT_ALLOWED')
  t.equal(r.headers.get('allow'), 'POST')

  // Signed for the join path, sent elsewhere: no route, and the PSK is no key of the signed scheme.
  req = signedJoin({ keyid: 'worker-16', publicKey: generateX25519().publicKey })
  r = await send(gw.url + '/pools/join', { headers: req.headers, body: req.body })
  t.equal(r.status, 401)
})

t.test('an upgrade to the join path is answered by the pipeline like any request, never switched', async (t) => {
  const port = Number(new URL(gw.url).port)
  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
  // Without a body: the join route's own answer to a GET (its only method is POST), with the upgrade dropped.
  let r = await rawRequest(port, `GET ${JOIN_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${upgrade}\r\n`)
  t.equal(r.status, 405)
  t.match(r.json, { code: 'METHOD_NOT_ALLOWED' })
  t.notMatch(r.raw.toString('latin1'), /^HTTP\/1\.1 101/, 'never switched protocols')
  const reqId = r.json!.requestId
  t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId), { event: 'deny', reason: 'METHOD_NOT_ALLOWED', status: 405, route: JOIN_PATH })
  // A valid signed join sent as an upgrade: an upgrade that declares a body is 400 on every route (DESIGN §3 step 0),
  // the join route included; nothing is derived or answered with a key.
  const join = signedJoin({ keyid: 'worker-17', publicKey: generateX25519().publicKey })
  const headers = Object.entries(join.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  r = await rawRequest(port, `POST ${JOIN_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}Content-Length: ${Buffer.byteLength(join.body)}\r\n${upgrade}\r\n${join.body}`)
  t.equal(r.status, 400)
  t.match(r.json, { code: 'BAD_REQUEST' })
  t.notOk('key' in (r.json ?? {}), 'no key in the answer')
  const refused = r.json!.requestId
  t.match(await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === refused), { event: 'deny', reason: 'BAD_REQUEST', status: 400 })
})

t.test('rate-limited under identity join:<keyid> with defaults.rateLimit', async (t) => {
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    const req = signedJoin({ keyid: 'worker-rl', publicKey: generateX25519().publicKey })
    const r = await send(req.url, req)
    statuses.push(r.status)
    if (r.status === 429) {
      t.equal(r.json.code, 'RATE_LIMITED')
      t.ok(r.headers.get('retry-after'))
    }
  }
  t.same(statuses, [200, 200, 200, 429])
  const other = signedJoin({ keyid: 'worker-other', publicKey: generateX25519().publicKey })
  t.equal((await send(other.url, other)).status, 200, 'another keyid has its own budget')
})

const hasPythonCryptography = spawnSync('python3', ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0

t.test('the Python example (docs) joins and gets the same key', { skip: hasPythonCryptography ? false : 'python3 with the cryptography package is not available' }, async (t) => {
  const out = execFileSync('python3', [join(EXAMPLES, 'join.py'), gw.url, 'py-worker'], { env: { ...process.env, JOIN_PSK: PSK }, timeout: 20_000 }).toString().trim()
  t.equal(out, deriveKey(MASTER, 'py-worker'))
})

t.test('no secret or derived key in the gateway output', async (t) => {
  const out = gw.output()
  for (const s of [PSK, MASTER, deriveKey(MASTER, 'worker-9'), deriveKey(MASTER, 'worker-10'), deriveKey(MASTER, 'py-worker')]) t.notMatch(out, s)
})

t.test('over TLS: without publicKey the key is returned as is; auth failures are throttled', async (t) => {
  const pki: TestPki = makePki()
  const tlsGw = await startGateway(
    config(backend.url, `  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} }\n`).replace('defaults:\n', 'defaults:\n  authFailures: { max: 2, window: 1m }\n'),
    env,
  )
  t.teardown(() => tlsGw.stop())
  const post = (req: { url: string; headers: Record<string, string>; body: string }) =>
    new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
      const r = httpsRequest(req.url, { method: 'POST', headers: req.headers, ca: pki.ca.cert, agent: false, timeout: 10_000 }, (res) => {
        let text = ''
        res.on('data', (d) => (text += d))
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as Record<string, unknown> }))
      })
      r.on('error', reject)
      r.end(req.body)
    })
  let r = await post(signedJoin({ keyid: 'tls-worker' }, PSK, tlsGw.url))
  t.equal(r.status, 200)
  t.same(r.json, { keyid: 'tls-worker', key: deriveKey(MASTER, 'tls-worker') })
  r = await post(signedJoin({ keyid: 'tls-worker-2', publicKey: generateX25519().publicKey }, PSK, tlsGw.url))
  t.ok('wrappedKey' in r.json, 'with a publicKey the answer is wrapped even over TLS')
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await post(signedJoin({ keyid: 'x' }, testSecret('bad'), tlsGw.url))).status)
  t.same(statuses, [401, 401, 429], 'two failures, then 429 until the window ends')
  r = await post(signedJoin({ keyid: 'tls-worker-3' }, PSK, tlsGw.url))
  t.equal(r.status, 429, 'even a good PSK from that address waits out the window')
})

t.test('config: join.scheme must be an rfc9421 scheme with derive', async (t) => {
  const base = (schemes: string, scheme: string) => `version: 1
upstreams:
  b: { url: "http://127.0.0.1:9" }
schemes:
${schemes}
join:
  psk: "\${env:JOIN_PSK}"
  scheme: ${scheme}
routes:
  - { path: /x, upstream: b, public: true }
`
  const cases: Array<[string, string, RegExp]> = [
    ['  signed: { type: rfc9421, keys: { w: "${env:WORKER_MASTER_KEY}" } }', 'signed', /join\.scheme: scheme "signed" must be type rfc9421 with a derive master/],
    ['  workers: { type: worker-v1, secret: "${env:WORKER_MASTER_KEY}" }', 'workers', /must be type rfc9421 with a derive master/],
    ['  signed: { type: rfc9421, derive: "${env:WORKER_MASTER_KEY}" }', 'nope', /join\.scheme: unknown scheme "nope"/],
  ]
  for (const [schemes, scheme, message] of cases) {
    const r = await runCli(['check', '--config', writeConfig(base(schemes, scheme))], env)
    t.equal(r.code, 1, scheme)
    t.match(r.stdout + r.stderr, message)
  }
  const ok = await runCli(['check', '--config', writeConfig(base('  signed: { type: rfc9421, derive: "${env:WORKER_MASTER_KEY}" }', 'signed'))], env)
  t.equal(ok.code, 0, ok.stdout + ok.stderr)
})
