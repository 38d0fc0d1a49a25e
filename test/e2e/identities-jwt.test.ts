// DESIGN §4.6 through real sockets: jwt schemes (HS256 secret, EdDSA / ES256 JWKS) and tokens
// issued by `portcullis mint` from the same config. Refusals: TOKEN_EXPIRED or INVALID_CREDENTIALS.
import t from 'tap'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, type JWTPayload } from 'jose'
import { runCli, startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'
import { tokenFingerprint } from '../../src/auth/credential.js'

const JOB_SECRET = testSecret('jobsecret')
const STATIC_TOKEN = testSecret('static')
const dir = mkdtempSync(join(tmpdir(), 'portcullis-jwt-e2e-'))
const ed = generateKeyPairSync('ed25519')
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const stranger = generateKeyPairSync('ed25519')
const edKeyFile = join(dir, 'ed.pem')
const ecKeyFile = join(dir, 'ec.pem')
const strangerKeyFile = join(dir, 'stranger.pem')
const jwksFile = join(dir, 'jwks.json')
writeFileSync(edKeyFile, ed.privateKey.export({ format: 'pem', type: 'pkcs8' }))
writeFileSync(ecKeyFile, ec.privateKey.export({ format: 'pem', type: 'pkcs8' }))
writeFileSync(strangerKeyFile, stranger.privateKey.export({ format: 'pem', type: 'pkcs8' }))
writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed-2024' }, ec.publicKey.export({ format: 'jwk' })] }))
const env = { JOB_SECRET, STATIC_TOKEN }

let backend: Backend
let gw: RunningGateway

function config(backendUrl: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  orchestrator: { url: "${backendUrl}" }
identities:
  - { name: orchestratord, roles: [control-plane], bearer: "\${env:STATIC_TOKEN}" }
schemes:
  jobs:
    type: jwt
    issuer: portcullis
    audience: orchestrator
    secret: "\${env:JOB_SECRET}"
    maxTtl: 15m
    rolesClaim: roles
  cluster:
    type: jwt
    issuer: cluster-ca
    jwks: ${jwksFile}
    maxTtl: 5m
routes:
  - { path: /v2/tasks/:id/events, upstream: orchestrator, auth: [bearer, jobs] }
  - { path: /jobs, upstream: orchestrator, auth: [jobs], roles: [worker] }
  - { path: /cluster, upstream: orchestrator, auth: [cluster] }
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

async function call(path: string, token: string | undefined): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(gw.url + path, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  const text = await res.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // SSE or empty
  }
  return { status: res.status, json, headers: res.headers }
}

async function mint(args: string[], extraEnv: Record<string, string> = {}) {
  return runCli(['mint', '--config', gw.configFile, ...args], { ...env, ...extraEnv })
}

const now = () => Math.floor(Date.now() / 1000)
function hs(payload: JWTPayload, secret = JOB_SECRET): Promise<string> {
  return new SignJWT({ iss: 'portcullis', aud: 'orchestrator', sub: 'w', iat: now(), exp: now() + 300, ...payload }).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(secret))
}

t.test('mint → the gateway accepts the token: identity = sub, method = scheme, fp = token fingerprint', async (t) => {
  const m = await mint(['--scheme', 'jobs', '--sub', 'worker-1', '--roles', 'worker', '--ttl', '10m'])
  t.equal(m.code, 0, m.stderr)
  const token = m.stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/)
  const before = backend.requests.length
  const r = await call('/jobs', token)
  t.equal(r.status, 200)
  const got = backend.requests[before]!
  t.equal(got.headers['x-auth-identity'], 'jobs:worker-1')
  t.equal(got.headers['x-auth-method'], 'jobs')
  t.equal(got.headers['x-auth-roles'], 'worker')
  t.equal(got.headers['x-auth-fingerprint'], tokenFingerprint(token))
  t.equal(got.headers.authorization, undefined, 'the token is stripped before forwarding')
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as JWTPayload
  t.match(claims, { iss: 'portcullis', aud: 'orchestrator', sub: 'worker-1', roles: ['worker'] })
  t.equal(claims.exp! - claims.iat!, 600)
})

t.test('a route accepting bearer and a jwt scheme takes a static token or a jwt', async (t) => {
  let r = await call('/v2/tasks/7/events', STATIC_TOKEN)
  t.equal(r.status, 200)
  const m = await mint(['--scheme', 'jobs', '--sub', 'job-7'])
  t.equal(m.code, 0, m.stderr)
  r = await call('/v2/tasks/7/events', m.stdout.trim())
  t.equal(r.status, 200, JSON.stringify(r.json))
  r = await call('/v2/tasks/7/events', 'neither-a-token-nor-a-jwt')
  t.equal(r.status, 401)
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
  t.equal(r.json.error, 'Invalid token')
})

t.test('roles come from the claim: without the role → 403', async (t) => {
  const m = await mint(['--scheme', 'jobs', '--sub', 'worker-2'])
  t.equal(m.code, 0)
  const r = await call('/jobs', m.stdout.trim())
  t.equal(r.status, 403)
  t.equal(r.json.code, 'FORBIDDEN')
})

t.test('expired, not yet valid, too long-lived → 401 TOKEN_EXPIRED', async (t) => {
  const cases: Array<[string, JWTPayload]> = [
    ['expired', { iat: now() - 600, exp: now() - 60 }],
    ['not yet valid', { nbf: now() + 120 }],
    ['too long-lived', { iat: now(), exp: now() + 16 * 60, roles: ['worker'] }],
  ]
  for (const [name, payload] of cases) {
    const token = await hs(payload)
    const r = await call('/jobs', token)
    t.equal(r.status, 401, name)
    t.equal(r.json.code, 'TOKEN_EXPIRED', name)
    const line = await gw.waitForLog((l) => l.msg === 'auth' && l.fp === tokenFingerprint(token))
    t.match(line, { event: 'deny', reason: 'TOKEN_EXPIRED', authMethod: 'jobs' }, name)
  }
  const expiredOnBoth = await hs({ iat: now() - 600, exp: now() - 60 })
  const r = await call('/v2/tasks/1/events', expiredOnBoth)
  t.equal(r.json.code, 'TOKEN_EXPIRED', 'not masked by the static bearer check on the same route')
})

t.test('none, wrong issuer, wrong audience, wrong secret, alg confusion → 401 INVALID_CREDENTIALS', async (t) => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const payload = { iss: 'portcullis', aud: 'orchestrator', sub: 'w', iat: now(), exp: now() + 300, roles: ['worker'] }
  const edPem = ed.publicKey.export({ format: 'pem', type: 'spki' }) as string
  const confused = (alg: string, secret: Buffer | string, p: object) => {
    const input = `${b64({ alg, kid: 'ed-2024' })}.${b64(p)}`
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
  }
  const cases: Array<[string, string, string]> = [
    ['alg none', '/jobs', `${b64({ alg: 'none' })}.${b64(payload)}.`],
    ['wrong issuer', '/jobs', await hs({ iss: 'evil', roles: ['worker'] })],
    ['wrong audience', '/jobs', await hs({ aud: 'pool-manager', roles: ['worker'] })],
    ['wrong secret', '/jobs', await hs({ roles: ['worker'] }, testSecret('other'))],
    ['HS256 keyed with the jwks public key (PEM)', '/cluster', confused('HS256', edPem, { ...payload, iss: 'cluster-ca' })],
    ['HS256 keyed with the raw public key', '/cluster', confused('HS256', Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url'), { ...payload, iss: 'cluster-ca' })],
    ['a jobs token on the cluster scheme', '/cluster', await hs({})],
  ]
  for (const [name, path, token] of cases) {
    const r = await call(path, token)
    t.equal(r.status, 401, name)
    t.equal(r.json.code, 'INVALID_CREDENTIALS', name)
    t.equal(r.json.error, 'Invalid token', name)
  }
})

t.test('mint for a jwks scheme signs with --key (EdDSA with kid, ES256)', async (t) => {
  let m = await mint(['--scheme', 'cluster', '--sub', 'node-a', '--ttl', '2m', '--key', edKeyFile])
  t.equal(m.code, 0, m.stderr)
  const edToken = m.stdout.trim()
  t.match(JSON.parse(Buffer.from(edToken.split('.')[0]!, 'base64url').toString()), { alg: 'EdDSA', kid: 'ed-2024' })
  let r = await call('/cluster', edToken)
  t.equal(r.status, 200)
  t.equal((r.json.headers as Record<string, string>)['x-auth-identity'], 'cluster:node-a')
  t.equal((r.json.headers as Record<string, string>)['x-auth-method'], 'cluster')
  m = await mint(['--scheme', 'cluster', '--sub', 'node-b', '--ttl', '2m', '--key', ecKeyFile])
  t.equal(m.code, 0, m.stderr)
  t.match(JSON.parse(Buffer.from(m.stdout.split('.')[0]!, 'base64url').toString()), { alg: 'ES256' })
  r = await call('/cluster', m.stdout.trim())
  t.equal(r.status, 200)
})

t.test('mint refuses what the gateway would refuse', async (t) => {
  let m = await mint(['--scheme', 'cluster', '--sub', 'x', '--key', strangerKeyFile])
  t.equal(m.code, 1)
  t.match(m.stderr, /not in the scheme's jwks/)
  m = await mint(['--scheme', 'cluster', '--sub', 'x'])
  t.equal(m.code, 2)
  t.match(m.stderr, /--key FILE/)
  m = await mint(['--scheme', 'jobs', '--sub', 'x', '--ttl', '1h'])
  t.equal(m.code, 1)
  t.match(m.stderr, /longer than the scheme's maxTtl/)
  m = await mint(['--scheme', 'nope', '--sub', 'x'])
  t.equal(m.code, 1)
  t.match(m.stderr, /no scheme "nope"/)
  m = await mint(['--scheme', 'jobs'])
  t.equal(m.code, 2)
  t.equal(m.stdout, '')
})

t.test('mint reads the config from $PORTCULLIS_CONFIG like serve', async (t) => {
  const m = await runCli(['mint', '--scheme', 'jobs', '--sub', 'w-env', '--roles', 'worker'], { ...env, PORTCULLIS_CONFIG: gw.configFile })
  t.equal(m.code, 0, m.stderr)
  t.equal((await call('/jobs', m.stdout.trim())).status, 200)
})

t.test('no secret or token ever appears in the gateway output', async (t) => {
  const out = gw.output()
  t.notMatch(out, JOB_SECRET)
  t.notMatch(out, STATIC_TOKEN)
  t.notMatch(out, /eyJ[\w-]{10,}\.[\w-]{10,}/, 'no JWT')
})
