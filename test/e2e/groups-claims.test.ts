// DESIGN §4.9 through real sockets: all-of groups (`auth: [bearer, [mtls, jobs]]`), certificate-bound
// job tokens, claims on roles, and jwt `revoked`. Certificates are made by openssl at test time.
import t from 'tap'
import { request } from 'node:https'
import { X509Certificate, createHash, createHmac, randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import { SignJWT } from 'jose'
import { runCli, startBackend, startGateway, testSecret, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { makePki, type Pem, type TestPki } from './certs.js'
import { keyFingerprint } from '../../src/auth/credential.js'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  json: Record<string, unknown>
}

function httpsCall(url: string, ca: string, client?: Pem, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ca, ...(client ? { cert: client.cert, key: client.key } : {}), headers, agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => {
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(text) as Record<string, unknown>
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode!, headers: res.headers, json })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

let pki: TestPki
let backend: Backend
let gw: RunningGateway
const OPS_TOKEN = testSecret('ops')
const JOB_SECRET = testSecret('jobs')
const BOUND_SECRET = testSecret('bound')
const NODE_KEY = testSecret('nodekey')
let certs: Record<string, Pem>

function config(revoked: string[] = []): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  backend: { url: "${backend.url}" }
identities:
  - name: gpu-node-1
    roles: [worker]
    claims: { gpu: true, zone: eu-1 }
    mtls: { san: "URI:spiffe://cluster/gpu-node-1" }
  - name: cpu-node-1
    roles: [worker]
    claims: { gpu: false, zone: us-1 }
    mtls: { subject: "CN=cpu-node-1" }
  - name: ops
    roles: [control-plane]
    bearer: "\${env:OPS_TOKEN}"
  - name: node-key
    roles: [keyholder]
    apiKey: "\${env:NODE_KEY}"
schemes:
  jobs:
    type: jwt
    issuer: portcullis
    secret: "\${env:JOB_SECRET}"
    revoked: ${JSON.stringify(revoked)}
  workers:
    type: worker-v1
    secret: "\${env:WORKER_SECRET}"
    roles: [worker]
    claims: { pool: a, gpu: false }
  bound:
    type: jwt
    secret: "\${env:BOUND_SECRET}"
    bindCertificate: true
routes:
  - { path: /either, upstream: backend, auth: [bearer, [mtls, jobs]] }
  - { path: /group-roles, upstream: backend, auth: [[mtls, jobs]], roles: [control-plane] }
  - { path: /key-and-token, upstream: backend, auth: [[apiKey, jobs]] }
  - { path: /key-or-token, upstream: backend, auth: [apiKey, jobs] }
  - { path: /bound, upstream: backend, auth: [[mtls, bound]] }
  - { path: /bound-alone, upstream: backend, auth: [bound] }
  - { path: /jobs, upstream: backend, auth: [jobs] }
  - path: /gpu
    upstream: backend
    auth: [bearer, mtls, jobs]
    roles: [control-plane, { role: worker, claims: { gpu: true } }]
  - path: /zones
    upstream: backend
    auth: [mtls, jobs]
    roles: [{ role: worker, claims: { zone: [eu-1, eu-2] } }]
  - path: /group-zone
    upstream: backend
    auth: [[mtls, jobs]]
    roles: [{ role: worker, claims: { zone: eu-1, extra: 1 } }]
  - { path: /node-signed, upstream: backend, auth: [[mtls, workers]] }
  - { path: /pool-a, upstream: backend, auth: [workers], roles: [{ role: worker, claims: { pool: a } }] }
  - { path: /gpu-signed, upstream: backend, auth: [workers], roles: [{ role: worker, claims: { gpu: true } }] }
  - path: /tags
    upstream: backend
    auth: [jobs]
    roles: [{ role: worker, claims: { tags: blue, tier: 2 } }]
`
}

const WORKER_SECRET = testSecret('workers')
const env = () => ({ OPS_TOKEN, JOB_SECRET, BOUND_SECRET, NODE_KEY, WORKER_SECRET })
function workerHeaders(id: string): Record<string, string> {
  const ts = String(Date.now())
  return { 'x-worker-id': id, 'x-worker-timestamp': ts, 'x-worker-signature': createHmac('sha256', WORKER_SECRET).update(`${id}:${ts}`).digest('hex') }
}

t.before(async () => {
  pki = makePki()
  certs = {
    gpu: pki.client('gpu-node-1', { san: 'URI:spiffe://cluster/gpu-node-1' }),
    cpu: pki.client('cpu-node-1'),
    foreign: pki.foreignClient('/CN=cpu-node-1'),
  }
  backend = await startBackend()
  gw = await startGateway(config(), env())
})

t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

const fpOf = (p: Pem) => keyFingerprint(new X509Certificate(p.cert).fingerprint256)
const thumbprint = (p: Pem) => createHash('sha256').update(new X509Certificate(p.cert).raw).digest('base64url')

async function jobToken(o: { sub?: string; roles?: string[]; claims?: Record<string, unknown>; secret?: string; issuer?: string; jti?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  let b = new SignJWT({ ...(o.roles ? { roles: o.roles } : {}), ...(o.claims ?? {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(o.sub ?? 'job-1')
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .setJti(o.jti ?? randomUUID())
  if (o.issuer !== null) b = b.setIssuer(o.issuer ?? 'portcullis')
  return b.sign(Buffer.from(o.secret ?? JOB_SECRET, 'utf8'))
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const seen = (r: Reply) => (r.json.headers ?? {}) as Record<string, string>

t.test('all-of group: certificate AND job token → one identity, the first method\'s, method joined by +', async (t) => {
  const token = await jobToken({ roles: ['control-plane'] })
  const r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, certs.gpu, bearer(token))
  t.equal(r.status, 200)
  const h = seen(r)
  t.equal(h['x-auth-identity'], 'gpu-node-1', 'identity of the first member')
  t.equal(h['x-auth-method'], 'mtls+jobs')
  t.equal(h['x-auth-fingerprint'], fpOf(certs.gpu), 'fp of the first member')
  t.same(h['x-auth-roles']!.split(',').sort(), ['control-plane', 'worker'], 'roles are the union')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.path === '/group-roles' && l.event === 'allow')
  t.match(line, { identity: 'gpu-node-1', authMethod: 'mtls+jobs' })
})

t.test('all-of group: roles come from the union (neither member alone has control-plane → 403)', async (t) => {
  const r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, certs.gpu, bearer(await jobToken({ roles: ['reader'] })))
  t.equal(r.status, 403)
  t.equal(r.json.code, 'FORBIDDEN')
})

t.test('all-of group partly present: 401 with the first missing or refused member\'s code', async (t) => {
  let r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, certs.gpu)
  t.equal(r.status, 401, 'certificate without token')
  t.equal(r.json.code, 'MISSING_CREDENTIALS')
  t.equal(r.json.error, 'Missing token')
  r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, undefined, bearer(await jobToken({ roles: ['control-plane'] })))
  t.equal(r.status, 401, 'token without certificate')
  t.equal(r.json.code, 'MISSING_CREDENTIALS')
  t.equal(r.json.error, 'Missing client certificate')
  r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, certs.gpu, bearer(await jobToken({ secret: testSecret('wrong') })))
  t.equal(r.status, 401, 'certificate with a forged token')
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
  r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert, certs.foreign, bearer(await jobToken({ roles: ['control-plane'] })))
  t.equal(r.status, 401, 'untrusted certificate with a valid token: the first member refuses')
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
  t.equal(r.json.error, 'Invalid client certificate')
  r = await httpsCall(`${gw.url}/group-roles`, pki.ca.cert)
  t.equal(r.status, 401, 'nothing at all')
  t.equal(r.json.code, 'MISSING_CREDENTIALS')
  t.equal(r.headers['www-authenticate'], 'ClientCertificate realm="portcullis", Bearer realm="portcullis"', 'each member\'s challenge once')
})

t.test('auth: [bearer, [mtls, jobs]]: a bearer alone, or certificate and token together', async (t) => {
  let r = await httpsCall(`${gw.url}/either`, pki.ca.cert, undefined, bearer(OPS_TOKEN))
  t.equal(r.status, 200)
  t.equal(seen(r)['x-auth-method'], 'bearer')
  r = await httpsCall(`${gw.url}/either`, pki.ca.cert, certs.cpu, bearer(await jobToken()))
  t.equal(r.status, 200)
  t.equal(seen(r)['x-auth-method'], 'mtls+jobs')
  t.equal(seen(r)['x-auth-identity'], 'cpu-node-1')
  r = await httpsCall(`${gw.url}/either`, pki.ca.cert, undefined, bearer(await jobToken()))
  t.equal(r.status, 401, 'a job token alone is half of the group')
})

t.test('ambiguity: two kinds are fine when they are exactly one group\'s kinds, ambiguous otherwise', async (t) => {
  const token = await jobToken()
  let r = await httpsCall(`${gw.url}/key-and-token`, pki.ca.cert, undefined, { 'x-api-key': NODE_KEY, ...bearer(token) })
  t.equal(r.status, 200)
  t.equal(seen(r)['x-auth-method'], 'apiKey+jobs')
  t.equal(seen(r)['x-auth-identity'], 'node-key')
  r = await httpsCall(`${gw.url}/key-or-token`, pki.ca.cert, undefined, { 'x-api-key': NODE_KEY, ...bearer(token) })
  t.equal(r.status, 401, 'the same two credentials on a route with no such group')
  t.equal(r.json.code, 'AMBIGUOUS_CREDENTIALS')
  r = await httpsCall(`${gw.url}/key-and-token`, pki.ca.cert, undefined, { 'x-api-key': NODE_KEY, ...bearer(token), 'x-worker-id': 'w1' })
  t.equal(r.status, 401, 'a third kind is not the group\'s')
  t.equal(r.json.code, 'AMBIGUOUS_CREDENTIALS')
  r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, certs.gpu, bearer(token))
  t.equal(r.status, 200, 'a client certificate never makes a request ambiguous')
  t.equal(seen(r)['x-auth-method'], 'jobs')
})

t.test('check prints a group readably', async (t) => {
  const r = await runCli(['check', '--config', gw.configFile], env())
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /bearer,mtls\+jobs/)
})

t.test('config: a group naming an unknown method, one method twice, or two of one kind is an error', async (t) => {
  const file = writeConfig(config().replace('auth: [[apiKey, jobs]]', 'auth: [[apiKey, apiKey]]').replace('auth: [[mtls, bound]]', 'auth: [[mtls, nope]]'))
  const r = await runCli(['check', '--config', file], env())
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /routes\[2\]\.auth\[0\]\[1\]: "apiKey" appears twice in this group/)
  t.match(r.stdout + r.stderr, /routes\[4\]\.auth\[0\]\[1\]: unknown auth method "nope"/)
  const same = await runCli(['check', '--config', writeConfig(config().replace('auth: [[apiKey, jobs]]', 'auth: [[jobs, bound]]'))], env())
  t.equal(same.code, 1)
  t.match(same.stdout + same.stderr, /routes\[2\]\.auth\[0\]\[1\]: "bound" reads the same credential as "jobs": a group needs members of different kinds/)
})

t.test('the gateway output never holds a secret', async (t) => {
  for (const s of [OPS_TOKEN, JOB_SECRET, BOUND_SECRET, NODE_KEY, WORKER_SECRET]) t.notMatch(gw.output(), s)
})

t.test('certificate-bound token: accepted only with the certificate it names (RFC 8705 §3)', async (t) => {
  const boundToGpu = await jobToken({ secret: BOUND_SECRET, issuer: undefined, claims: { cnf: { 'x5t#S256': thumbprint(certs.gpu) } } })
  let r = await httpsCall(`${gw.url}/bound`, pki.ca.cert, certs.gpu, bearer(boundToGpu))
  t.equal(r.status, 200)
  t.equal(seen(r)['x-auth-method'], 'mtls+bound')
  r = await httpsCall(`${gw.url}/bound-alone`, pki.ca.cert, certs.gpu, bearer(boundToGpu))
  t.equal(r.status, 200, 'the scheme alone on a route: the certificate still binds it')
  t.equal(seen(r)['x-auth-identity'], 'bound:job-1')
  for (const [what, client, token] of [
    ['another trusted certificate', certs.cpu, boundToGpu],
    ['no certificate', undefined, boundToGpu],
    ['an untrusted certificate', certs.foreign, boundToGpu],
    ['a token without cnf', certs.gpu, await jobToken({ secret: BOUND_SECRET })],
    ['a cnf naming another certificate', certs.gpu, await jobToken({ secret: BOUND_SECRET, claims: { cnf: { 'x5t#S256': thumbprint(certs.cpu) } } })],
    ['a cnf holding the hex thumbprint', certs.gpu, await jobToken({ secret: BOUND_SECRET, claims: { cnf: { 'x5t#S256': createHash('sha256').update(new X509Certificate(certs.gpu.cert).raw).digest('hex') } } })],
  ] as const) {
    r = await httpsCall(`${gw.url}/bound-alone`, pki.ca.cert, client, bearer(token))
    t.equal(r.status, 401, what)
    t.equal(r.json.code, 'INVALID_CREDENTIALS', what)
    t.equal(r.json.error, 'Token not bound to this certificate', what)
  }
})

t.test('mint --cnf-cert FILE binds the token to that certificate, --claim adds claims', async (t) => {
  const m = await runCli(['mint', '--config', gw.configFile, '--scheme', 'bound', '--sub', 'node-7', '--cnf-cert', certs.gpu.certFile, '--claim', 'gpu=true', '--claim', 'zone=eu-1', '--roles', 'worker'], env())
  t.equal(m.code, 0, m.stderr)
  const token = m.stdout.trim()
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  t.same(payload.cnf, { 'x5t#S256': thumbprint(certs.gpu) })
  t.equal(payload.gpu, true, 'a value that parses as JSON is JSON')
  t.equal(payload.zone, 'eu-1', 'any other value is a string')
  let r = await httpsCall(`${gw.url}/bound`, pki.ca.cert, certs.gpu, bearer(token))
  t.equal(r.status, 200)
  r = await httpsCall(`${gw.url}/bound`, pki.ca.cert, certs.cpu, bearer(token))
  t.equal(r.status, 401)
  const bad = await runCli(['mint', '--config', gw.configFile, '--scheme', 'bound', '--sub', 'x', '--cnf-cert', certs.gpu.keyFile], env())
  t.equal(bad.code, 1, 'a file that is not a certificate')
  t.match(bad.stderr, /not a PEM certificate/)
  t.notMatch(bad.stderr, /PRIVATE/)
})

t.test('claim matrix: {role, claims} entries against identities, schemes and tokens', async (t) => {
  const cases: [string, string, Pem | undefined, Record<string, string>, number][] = [
    ['mtls identity with gpu: true', '/gpu', certs.gpu, {}, 200],
    ['mtls identity with gpu: false', '/gpu', certs.cpu, {}, 403],
    ['a plain role of the list, no claims needed', '/gpu', undefined, bearer(OPS_TOKEN), 200],
    ['token: role worker, gpu true', '/gpu', undefined, bearer(await jobToken({ roles: ['worker'], claims: { gpu: true } })), 200],
    ['token: role worker, gpu "true" (a string is not the boolean)', '/gpu', undefined, bearer(await jobToken({ roles: ['worker'], claims: { gpu: 'true' } })), 403],
    ['token: gpu true but not the role', '/gpu', undefined, bearer(await jobToken({ roles: ['reader'], claims: { gpu: true } })), 403],
    ['token: role worker, no gpu claim', '/gpu', undefined, bearer(await jobToken({ roles: ['worker'] })), 403],
    ['token: array claim containing the value', '/gpu', undefined, bearer(await jobToken({ roles: ['worker'], claims: { gpu: [false, true] } })), 200],
    ['list in the route = any: eu-1', '/zones', certs.gpu, {}, 200],
    ['list in the route = any: us-1 is not in it', '/zones', certs.cpu, {}, 403],
    ['list in the route = any: token eu-2', '/zones', undefined, bearer(await jobToken({ roles: ['worker'], claims: { zone: 'eu-2' } })), 200],
    ['array claim meets list', '/zones', undefined, bearer(await jobToken({ roles: ['worker'], claims: { zone: ['us-1', 'eu-2'] } })), 200],
    ['array claim misses list', '/zones', undefined, bearer(await jobToken({ roles: ['worker'], claims: { zone: ['us-1'] } })), 403],
    ['every listed claim must hold: both', '/tags', undefined, bearer(await jobToken({ roles: ['worker'], claims: { tags: ['red', 'blue'], tier: 2 } })), 200],
    ['every listed claim must hold: one missing', '/tags', undefined, bearer(await jobToken({ roles: ['worker'], claims: { tags: ['blue'] } })), 403],
    ['a number claim is not its string', '/tags', undefined, bearer(await jobToken({ roles: ['worker'], claims: { tags: 'blue', tier: '2' } })), 403],
    ['an object claim never equals a scalar', '/tags', undefined, bearer(await jobToken({ roles: ['worker'], claims: { tags: { blue: true }, tier: 2 } })), 403],
  ]
  for (const [what, path, client, headers, status] of cases) {
    const r = await httpsCall(`${gw.url}${path}`, pki.ca.cert, client, headers)
    t.equal(r.status, status, what)
    if (status === 403) t.equal(r.json.code, 'FORBIDDEN', what)
  }
})

t.test('claims of a group are merged, the first member\'s value winning', async (t) => {
  // The certificate (first member) says zone eu-1 for gpu-node-1 and us-1 for cpu-node-1; the token adds `extra`.
  let r = await httpsCall(`${gw.url}/group-zone`, pki.ca.cert, certs.gpu, bearer(await jobToken({ claims: { zone: 'us-1', extra: 1 } })))
  t.equal(r.status, 200, 'zone from the certificate, extra from the token')
  r = await httpsCall(`${gw.url}/group-zone`, pki.ca.cert, certs.cpu, bearer(await jobToken({ claims: { zone: 'eu-1', extra: 1 } })))
  t.equal(r.status, 403, 'the token cannot override the first member\'s zone')
  r = await httpsCall(`${gw.url}/group-zone`, pki.ca.cert, certs.gpu, bearer(await jobToken()))
  t.equal(r.status, 403, 'extra is required and only the token could give it')
})

t.test('revoked jti or sub → 401 KEY_REVOKED; a reload applies a new list', async (t) => {
  const jti = randomUUID()
  const byJti = await jobToken({ jti })
  const bySub = await jobToken({ sub: 'bad-job' })
  let r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(byJti))
  t.equal(r.status, 200, 'not revoked yet')
  writeFileSync(gw.configFile, config([jti, 'bad-job']))
  gw.child.kill('SIGHUP')
  for (let i = 0; i < 100; i++) {
    r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(byJti))
    if (r.status !== 200) break
    await new Promise((res) => setTimeout(res, 50))
  }
  t.equal(r.status, 401)
  t.equal(r.json.code, 'KEY_REVOKED')
  r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(bySub))
  t.equal(r.status, 401)
  t.equal(r.json.code, 'KEY_REVOKED')
  r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(await jobToken()))
  t.equal(r.status, 200, 'other tokens still pass')
  const forged = await jobToken({ sub: 'bad-job', secret: testSecret('forged') })
  r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(forged))
  t.equal(r.json.code, 'INVALID_CREDENTIALS', 'a forged token naming a revoked sub is invalid, not revoked')
  writeFileSync(gw.configFile, config())
  gw.child.kill('SIGHUP')
  for (let i = 0; i < 100; i++) {
    r = await httpsCall(`${gw.url}/jobs`, pki.ca.cert, undefined, bearer(byJti))
    if (r.status === 200) break
    await new Promise((res) => setTimeout(res, 50))
  }
  t.equal(r.status, 200, 'emptied list: accepted again')
})

t.test('a group carries its members\' replay marks: a replayed signature in a group is REPLAYED', async (t) => {
  const h = workerHeaders('w-1')
  let r = await httpsCall(`${gw.url}/node-signed`, pki.ca.cert, certs.gpu, h)
  t.equal(r.status, 200)
  t.equal(seen(r)['x-auth-method'], 'mtls+workers')
  t.equal(seen(r)['x-auth-identity'], 'gpu-node-1')
  r = await httpsCall(`${gw.url}/node-signed`, pki.ca.cert, certs.gpu, h)
  t.equal(r.status, 401)
  t.equal(r.json.code, 'REPLAYED')
})

t.test('scheme-level claims: every signer of a worker-v1 scheme has them', async (t) => {
  let r = await httpsCall(`${gw.url}/pool-a`, pki.ca.cert, undefined, workerHeaders('w-2'))
  t.equal(r.status, 200)
  r = await httpsCall(`${gw.url}/gpu-signed`, pki.ca.cert, undefined, workerHeaders('w-3'))
  t.equal(r.status, 403)
  t.equal(r.json.code, 'FORBIDDEN')
})

t.test('config: bindCertificate without server.tls.clientCa is an error', async (t) => {
  const file = writeConfig(config().replace(`, clientCa: ${pki.ca.certFile}`, '').replace(/identities:[\s\S]*?schemes:/, 'schemes:').replace(/auth: \[\[mtls, [a-z]+\]\]/g, 'auth: [jobs]').replace(/auth: \[bearer, \[mtls, jobs\]\]/, 'auth: [jobs]').replace(/auth: \[bearer, mtls, jobs\]/, 'auth: [jobs]').replace(/auth: \[mtls, jobs\]/g, 'auth: [jobs]').replace('auth: [[apiKey, jobs]]', 'auth: [jobs]').replace('auth: [apiKey, jobs]', 'auth: [jobs]'))
  const r = await runCli(['check', '--config', file], env())
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /schemes\.bound\.bindCertificate: bindCertificate needs server\.tls\.clientCa/)
})
