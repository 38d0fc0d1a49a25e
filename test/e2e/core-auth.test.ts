// Black-box: default deny, 405, bearer and API-key authentication (DESIGN §4.1, §4.2), roles,
// ambiguous credentials, public and loopback routes, the audit line (§6) and the error body (§5),
// against a real `portcullis serve` in front of a recording backend.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { rawGet, send, type RawResponse, type Reply } from './raw-http.js'

const TOK_A = testSecret('tokA')
const TOK_B = testSecret('tokB')
const TOK_R = testSecret('tokR')
const KEY_C = testSecret('keyC')
const KEY_D = testSecret('keyD')
const KEY_E = testSecret('keyE')
const WORKER_SECRET = testSecret('worker')
const SIGN_KEY = testSecret('sign')
const WRONG_TOKEN = testSecret('wrongTok')
const WRONG_KEY = testSecret('wrongKey')
/** Every credential this file sends or configures; none may ever appear in the gateway's output. */
const SECRETS = [TOK_A, TOK_B, TOK_R, KEY_C, KEY_D, KEY_E, WORKER_SECRET, SIGN_KEY, WRONG_TOKEN, WRONG_KEY]

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex')
const fp = (s: string) => 'token:' + sha256hex(s).slice(0, 6)

const config = (backend: string) => `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  be: { url: "${backend}", timeout: 5s }
identities:
  - name: orchestratord
    roles: [control-plane, ops]
    bearer: ["\${env:TOK_A}", "\${env:TOK_B}"]
  - name: reader-bot
    roles: [reader]
    bearer: "\${env:TOK_R}"
  - name: coordinator
    roles: [coordinator]
    apiKey: "\${env:KEY_C}"
  - name: dashboard
    roles: [reader]
    apiKey: "sha256:${sha256hex(KEY_D)}"
  - name: custom
    roles: [reader]
    apiKey: "\${env:KEY_E}"
    apiKeyHeader: X-Custom-Key
schemes:
  workers:
    type: worker-v1
    secret: "\${env:WORKER_SECRET}"
    roles: [worker]
  signed:
    type: rfc9421
    keys:
      k1: "\${env:SIGN_KEY}"
    roles: [worker]
routes:
  - path: /public/*
    upstream: be
    public: true
  - path: /bearer/*
    upstream: be
    auth: [bearer]
  - path: /key/*
    upstream: be
    auth: [apiKey]
  - path: /either/*
    upstream: be
    auth: [bearer, apiKey]
  - path: /ops/*
    upstream: be
    auth: [bearer, apiKey]
    roles: [ops]
  - path: /workers/*
    upstream: be
    auth: [bearer, workers]
  - path: /signed/*
    upstream: be
    auth: [bearer, signed]
  - path: /local/debug
    upstream: be
    auth: [bearer]
    loopback: allow
  - path: /only-get
    methods: [GET]
    upstream: be
    public: true
  - path: /only-get
    methods: [put, DELETE]
    upstream: be
    auth: [bearer]
`

let be: Backend
let gw: RunningGateway
const bodies: string[] = []
let counter = 0
/** A path no other request in this file uses, so the backend's record of it is unambiguous. */
const uniq = (prefix: string) => `${prefix}c${++counter}`

t.before(async () => {
  be = await startBackend()
  gw = await startGateway(config(be.url), { TOK_A, TOK_B, TOK_R, KEY_C, KEY_E, WORKER_SECRET, SIGN_KEY }, 60_000)
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

type Tap = Pick<typeof t, 'equal' | 'same' | 'match' | 'ok' | 'notOk' | 'fail'>

const get = async (path: string, headers: Record<string, string | string[]> = {}, method = 'GET'): Promise<Reply> => {
  const r = await send(gw.url, path, { method, headers })
  bodies.push(r.body)
  return r
}
const raw = async (path: string, lines: string[]): Promise<RawResponse> => {
  const r = await rawGet(gw.port, path, lines)
  bodies.push(r.raw.toString('latin1'))
  return r
}
const received = (path: string) => be.requests.filter((r) => r.url === path)

/** A reply portcullis made itself: JSON {error, code, requestId} with content-type application/json. */
function expectError(t: Tap, r: Reply | RawResponse, status: number, code: string, message?: string): string {
  t.equal(r.status, status, `status ${status} (${code})`)
  t.match(String(r.headers['content-type']), /^application\/json/, 'content-type application/json')
  const body = r.json ?? {}
  t.same(Object.keys(body).sort(), ['code', 'error', 'requestId'], 'body is exactly {error, code, requestId}')
  t.equal(body.code, code)
  t.match(body.error, /^.+$/, 'error is a message')
  if (message !== undefined) t.equal(body.error, message)
  const id = String(body.requestId ?? '')
  t.ok(id.length > 0, 'requestId present')
  t.equal(r.headers['x-request-id'], id, 'x-request-id header equals requestId')
  return id
}

/** The one audit line of a request (exactly one). */
async function auditOf(t: Tap, reqId: string): Promise<Record<string, unknown>> {
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === reqId, 10_000)
  t.equal(gw.audits().filter((l) => l.reqId === reqId).length, 1, 'exactly one audit line for the request')
  return line
}

/** The forwarded request of an allowed call, by its unique path. */
function forwardedOnce(t: Tap, path: string) {
  const got = received(path)
  t.equal(got.length, 1, `${path} reached the backend once`)
  return got[0]
}

t.test('default deny: an unmatched path is 404 NO_ROUTE and never forwarded', async (t) => {
  const before = be.requests.length
  for (const [method, path] of [
    ['GET', '/nothing'],
    ['POST', '/nothing/at/all'],
    ['GET', '/bearerx/y'],
    ['GET', '/'],
    ['DELETE', '/public'],
  ] as const) {
    const r = await get(path, { authorization: `Bearer ${TOK_A}` }, method)
    const id = expectError(t, r, 404, 'NO_ROUTE')
    const line = await auditOf(t, id)
    t.match(line, { event: 'deny', reason: 'NO_ROUTE', status: 404, route: null, method, path })
  }
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('405 with Allow on a known path and another method', async (t) => {
  const before = be.requests.length
  const r = await get('/only-get', {}, 'POST')
  const id = expectError(t, r, 405, 'METHOD_NOT_ALLOWED')
  t.equal(r.headers.allow, 'DELETE, GET, PUT', 'Allow lists every method of every route on the path')
  t.match(await auditOf(t, id), { event: 'deny', reason: 'METHOD_NOT_ALLOWED', status: 405 })
  t.equal(be.requests.length, before, 'the backend received nothing')
  t.equal((await get('/only-get')).status, 200, 'GET is the public route')
  const put = await get('/only-get', {}, 'PUT')
  expectError(t, put, 401, 'MISSING_CREDENTIALS')
  t.equal((await get('/only-get', { authorization: `Bearer ${TOK_A}` }, 'PUT')).status, 200, 'PUT (written lower-case in the config) is the bearer route')
})

t.test('bearer: scheme word in any case, surrounding whitespace trimmed', async (t) => {
  for (const header of [`Bearer ${TOK_A}`, `bearer ${TOK_A}`, `BEARER ${TOK_A}`, `BeArEr ${TOK_A}`, `   Bearer    ${TOK_A}   `, `Bearer\t${TOK_A}`]) {
    const path = uniq('/bearer/')
    const r = await raw(path, [`Authorization: ${header}`])
    t.equal(r.status, 200, JSON.stringify(header.replace(TOK_A, 'TOKEN')))
    t.equal(forwardedOnce(t, path)?.headers['x-auth-identity'], 'orchestratord')
  }
})

t.test('bearer: an empty header or empty token is missing → 401 MISSING_CREDENTIALS with WWW-Authenticate', async (t) => {
  const before = be.requests.length
  for (const lines of [[], ['Authorization:'], ['Authorization: Bearer'], ['Authorization: Bearer    '], ['Authorization: bearer\t']]) {
    const path = uniq('/bearer/')
    const r = await raw(path, lines)
    const id = expectError(t, r, 401, 'MISSING_CREDENTIALS')
    t.match(String(r.headers['www-authenticate']), /^Bearer\b/, `challenge for ${JSON.stringify(lines)}`)
    t.match(await auditOf(t, id), { event: 'deny', reason: 'MISSING_CREDENTIALS', status: 401, route: '/bearer/*', fp: null })
  }
  const either = await get(uniq('/either/'))
  expectError(t, either, 401, 'MISSING_CREDENTIALS')
  t.match(String(either.headers['www-authenticate']), /Bearer/, 'the challenge lists bearer…')
  t.match(String(either.headers['www-authenticate']), /ApiKey/, '…and the API key')
  const basic = await get(uniq('/bearer/'), { authorization: 'Basic dXNlcjpwYXNz' })
  t.equal(basic.status, 401, 'another Authorization scheme is not a bearer token')
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('bearer: a wrong token is 401 INVALID_CREDENTIALS "Invalid token", fingerprinted in the audit line', async (t) => {
  const before = be.requests.length
  for (const wrong of [WRONG_TOKEN, TOK_A.slice(0, -1), TOK_A + 'x', TOK_A.toUpperCase()]) {
    const r = await get(uniq('/bearer/'), { authorization: `Bearer ${wrong}` })
    const id = expectError(t, r, 401, 'INVALID_CREDENTIALS', 'Invalid token')
    const line = await auditOf(t, id)
    t.match(line, { event: 'deny', reason: 'INVALID_CREDENTIALS', status: 401, authMethod: 'bearer', identity: null })
    t.equal(line.fp, fp(wrong), 'fp is token: + 6 hex of the presented (wrong) token')
  }
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('bearer rotation: every token of the list is valid, for the same identity', async (t) => {
  for (const tok of [TOK_A, TOK_B]) {
    const path = uniq('/bearer/')
    const r = await get(path, { authorization: `Bearer ${tok}` })
    t.equal(r.status, 200)
    const rec = forwardedOnce(t, path)
    t.equal(rec?.headers['x-auth-identity'], 'orchestratord')
    t.equal(rec?.headers['x-auth-fingerprint'], fp(tok), 'each token has its own fingerprint')
    const line = await auditOf(t, String(r.headers['x-request-id']))
    t.match(line, { event: 'allow', identity: 'orchestratord', authMethod: 'bearer', fp: fp(tok), status: 200, reason: null })
  }
})

t.test('apiKey: x-api-key (any case), a stored sha256: key, wrong and empty keys', async (t) => {
  const ok: [string[], string][] = [
    [[`x-api-key: ${KEY_C}`], 'coordinator'],
    [[`X-API-KEY: ${KEY_C}`], 'coordinator'],
    [[`X-Api-Key:   ${KEY_C}  `], 'coordinator'],
    [[`x-api-key: ${KEY_D}`], 'dashboard'],
  ]
  for (const [lines, who] of ok) {
    const path = uniq('/key/')
    const r = await raw(path, lines)
    t.equal(r.status, 200, lines[0]!.split(':')[0]!)
    const rec = forwardedOnce(t, path)
    t.equal(rec?.headers['x-auth-identity'], who)
    t.equal(rec?.headers['x-auth-method'], 'apiKey')
  }
  const before = be.requests.length
  const wrong = await get(uniq('/key/'), { 'x-api-key': WRONG_KEY })
  const id = expectError(t, wrong, 401, 'INVALID_CREDENTIALS', 'Invalid API key')
  const line = await auditOf(t, id)
  t.match(line, { authMethod: 'apiKey', fp: fp(WRONG_KEY), identity: null })
  for (const lines of [['x-api-key:'], ['x-api-key:    ']]) {
    const r = await raw(uniq('/key/'), lines)
    expectError(t, r, 401, 'MISSING_CREDENTIALS')
    t.match(String(r.headers['www-authenticate']), /x-api-key/i, 'the challenge names the header')
  }
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('apiKey: a custom apiKeyHeader is read for its identity only', async (t) => {
  const path = uniq('/key/')
  t.equal((await get(path, { 'X-Custom-Key': KEY_E })).status, 200)
  const rec = forwardedOnce(t, path)
  t.equal(rec?.headers['x-auth-identity'], 'custom')
  t.equal(rec?.headers['x-custom-key'], undefined, 'the custom key header is a credential: stripped')
  const before = be.requests.length
  expectError(t, await get(uniq('/key/'), { 'x-api-key': KEY_E }), 401, 'INVALID_CREDENTIALS', 'Invalid API key')
  expectError(t, await get(uniq('/key/'), { 'x-custom-key': KEY_C }), 401, 'INVALID_CREDENTIALS', 'Invalid API key')
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('apiKey: a key in the query string is not accepted', async (t) => {
  const before = be.requests.length
  for (const q of [`x-api-key=${KEY_C}`, `api_key=${KEY_C}`, `apikey=${KEY_C}`, `apiKey=${KEY_C}`, `key=${KEY_C}`, `X-Custom-Key=${KEY_E}`, `access_token=${TOK_A}`]) {
    expectError(t, await get(`${uniq('/key/')}?${q}`), 401, 'MISSING_CREDENTIALS')
  }
  expectError(t, await get(`${uniq('/bearer/')}?access_token=${TOK_A}`), 401, 'MISSING_CREDENTIALS')
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('roles: an identity without a required role gets 403 FORBIDDEN', async (t) => {
  const before = be.requests.length
  const r = await get(uniq('/ops/'), { authorization: `Bearer ${TOK_R}` })
  const id = expectError(t, r, 403, 'FORBIDDEN')
  t.match(await auditOf(t, id), { event: 'deny', reason: 'FORBIDDEN', status: 403, identity: 'reader-bot', authMethod: 'bearer', fp: fp(TOK_R) })
  const k = await get(uniq('/ops/'), { 'x-api-key': KEY_C })
  const kid = expectError(t, k, 403, 'FORBIDDEN')
  t.match(await auditOf(t, kid), { identity: 'coordinator', authMethod: 'apiKey', fp: fp(KEY_C) })
  t.equal(be.requests.length, before, 'the backend received nothing')
  const path = uniq('/ops/')
  t.equal((await get(path, { authorization: `Bearer ${TOK_B}` })).status, 200, 'an identity with the role passes')
  t.equal(forwardedOnce(t, path)?.headers['x-auth-roles'], 'control-plane,ops')
})

t.test('two credentials where one is expected → 401 AMBIGUOUS_CREDENTIALS, never forwarded', async (t) => {
  const before = be.requests.length
  const cases: [string, string[]][] = [
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, `Authorization: Bearer ${TOK_B}`]],
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, `Authorization: Bearer ${TOK_A}`]],
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, `authorization: Bearer ${WRONG_TOKEN}`]],
    ['/key/', [`x-api-key: ${KEY_C}`, `x-api-key: ${KEY_C}`]],
    ['/key/', [`X-Api-Key: ${KEY_C}`, `x-api-key: ${WRONG_KEY}`]],
    ['/key/', [`x-api-key: ${KEY_C}`, `X-Custom-Key: ${KEY_E}`]],
    ['/either/', [`Authorization: Bearer ${TOK_A}`, `x-api-key: ${KEY_C}`]],
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, `x-api-key: ${KEY_C}`]],
    ['/workers/', [`Authorization: Bearer ${TOK_A}`, 'x-worker-id: w1']],
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, 'x-worker-id: w1']],
    ['/signed/', [`Authorization: Bearer ${TOK_A}`, 'Signature-Input: sig1=("@method");keyid="k1";created=1;nonce="n"', 'Signature: sig1=:AAAA:']],
    ['/bearer/', [`Authorization: Bearer ${TOK_A}`, 'signature-input: sig1=("@method");keyid="k1"']],
  ]
  for (const [prefix, lines] of cases) {
    const r = await raw(uniq(prefix), lines)
    const id = expectError(t, r, 401, 'AMBIGUOUS_CREDENTIALS')
    t.match(await auditOf(t, id), { event: 'deny', reason: 'AMBIGUOUS_CREDENTIALS', status: 401 })
  }
  t.equal(be.requests.length, before, 'the backend received nothing')
})

t.test('public: true asks no credential and sets no identity', async (t) => {
  const path = uniq('/public/')
  const r = await get(path)
  t.equal(r.status, 200)
  const rec = forwardedOnce(t, path)
  t.equal(rec?.headers['x-auth-identity'], undefined)
  t.match(await auditOf(t, String(r.headers['x-request-id'])), { event: 'allow', status: 200, route: '/public/*', upstream: 'be' })
})

t.test('loopback: allow lets an unauthenticated loopback caller in as "localhost"; a wrong credential is still refused', async (t) => {
  const r = await get('/local/debug')
  t.equal(r.status, 200)
  const rec = received('/local/debug').at(-1)
  t.equal(rec?.headers['x-auth-identity'], 'localhost')
  t.match(await auditOf(t, String(r.headers['x-request-id'])), { event: 'allow', identity: 'localhost', status: 200 })

  const before = be.requests.length
  const wrong = await get('/local/debug', { authorization: `Bearer ${WRONG_TOKEN}` })
  expectError(t, wrong, 401, 'INVALID_CREDENTIALS', 'Invalid token')
  t.equal(be.requests.length, before, 'a wrong credential is not forwarded')

  const good = await get('/local/debug', { authorization: `Bearer ${TOK_A}` })
  t.equal(good.status, 200)
  t.equal(received('/local/debug').at(-1)?.headers['x-auth-identity'], 'orchestratord', 'a valid credential wins over loopback')
})

t.test('the audit line has every field, for an allow and a deny', async (t) => {
  const path = uniq('/bearer/')
  const allowed = await get(`${path}?q=1`, { authorization: `Bearer ${TOK_A}` })
  const line = await auditOf(t, String(allowed.headers['x-request-id']))
  for (const k of ['event', 'reqId', 'method', 'path', 'route', 'identity', 'claimed', 'authMethod', 'fp', 'reason', 'ip', 'status', 'upstream', 'ms']) t.ok(k in line, `field ${k}`)
  t.match(line, { msg: 'auth', event: 'allow', method: 'GET', path, route: '/bearer/*', identity: 'orchestratord', authMethod: 'bearer', fp: fp(TOK_A), reason: null, ip: '127.0.0.1', status: 200, upstream: 'be' })
  t.type(line.ms, 'number')
  t.equal(forwardedOnce(t, `${path}?q=1`)?.headers['x-auth-fingerprint'], line.fp, 'x-auth-fingerprint equals the line\'s fp')

  const denied = await get(uniq('/either/'), { 'x-api-key': WRONG_KEY }, 'POST')
  const id = expectError(t, denied, 401, 'INVALID_CREDENTIALS', 'Invalid API key')
  const d = await auditOf(t, id)
  for (const k of ['event', 'reqId', 'method', 'path', 'route', 'identity', 'claimed', 'authMethod', 'fp', 'reason', 'ip', 'status', 'upstream', 'ms']) t.ok(k in d, `field ${k}`)
  t.match(d, { event: 'deny', reqId: id, method: 'POST', route: '/either/*', authMethod: 'apiKey', fp: fp(WRONG_KEY), reason: 'INVALID_CREDENTIALS', ip: '127.0.0.1', status: 401, upstream: 'be' })
})

t.test('no secret appears in any response or in the gateway\'s output', async (t) => {
  // failed authentications with every secret, then stop so the logs are flushed
  await get(uniq('/bearer/'), { authorization: `Bearer ${KEY_C}` })
  await get(uniq('/key/'), { 'x-api-key': TOK_A })
  await get(uniq('/nothing/'), { authorization: `Bearer ${WORKER_SECRET}` })
  t.equal(await gw.stop(), 0, 'the gateway exits 0 on SIGTERM')
  const output = gw.output()
  t.ok(gw.audits().length > 40, 'the output holds the audit lines')
  for (const s of SECRETS) {
    t.notOk(output.includes(s), `${s.slice(0, 8)}… not in the gateway output`)
    t.notOk(bodies.some((b) => b.includes(s)), `${s.slice(0, 8)}… not in any response`)
  }
})
