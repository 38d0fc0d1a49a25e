// DESIGN §4.5 through real sockets: client certificates made with openssl at test time. Only a
// certificate that chains to server.tls.clientCa and names a configured identity authenticates.
import t from 'tap'
import { request } from 'node:https'
import { X509Certificate } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
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
let certs: Record<string, Pem>

t.before(async () => {
  pki = makePki()
  certs = {
    ci: pki.client('ci-runner'),
    deployer: pki.client('deployer-cert', { san: 'URI:spiffe://acme/deployer,DNS:deploy.example' }),
    bot: pki.client('bot', { subject: '/C=US/O=Acme, Inc/CN=bot' }),
    botOtherOrg: pki.client('bot2', { subject: '/O=Evil/CN=bot' }),
    nobody: pki.client('nobody'),
    foreign: pki.foreignClient('/CN=ci-runner'),
  }
  backend = await startBackend()
  gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  backend: { url: "${backend.url}" }
identities:
  - name: ci-runner
    roles: [admin]
    mtls: { subject: "CN=ci-runner" }
  - name: deployer
    roles: [admin]
    mtls: { san: "URI:spiffe://acme/deployer" }
  - name: acme-bot
    roles: [reader]
    mtls: { subject: "CN=bot, O=Acme\\\\, Inc, C=US" }
  - name: ops
    roles: [admin]
    bearer: "\${env:OPS_TOKEN}"
routes:
  - { path: /health, upstream: backend, public: true }
  - { path: /admin, upstream: backend, auth: [mtls], roles: [admin] }
  - { path: /reader, upstream: backend, auth: [mtls] }
  - { path: /either, upstream: backend, auth: [bearer, mtls] }
`,
    { OPS_TOKEN },
  )
})

t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

const fpOf = (p: Pem) => keyFingerprint(new X509Certificate(p.cert).fingerprint256)

t.test('a certificate from the client CA whose CN is configured authenticates its identity', async (t) => {
  const before = backend.requests.length
  const r = await httpsCall(`${gw.url}/admin`, pki.ca.cert, certs.ci, { 'x-auth-identity': 'forged' })
  t.equal(r.status, 200)
  const got = backend.requests[before]!
  t.equal(got.headers['x-auth-identity'], 'ci-runner')
  t.equal(got.headers['x-auth-method'], 'mtls')
  t.equal(got.headers['x-auth-roles'], 'admin')
  t.equal(got.headers['x-auth-fingerprint'], fpOf(certs.ci))
  t.match(got.headers['x-auth-fingerprint'], /^key:[0-9a-f]{6}$/)
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.path === '/admin' && l.event === 'allow')
  t.match(line, { identity: 'ci-runner', authMethod: 'mtls', fp: fpOf(certs.ci), status: 200 })
})

t.test('by SAN entry', async (t) => {
  const before = backend.requests.length
  const r = await httpsCall(`${gw.url}/admin`, pki.ca.cert, certs.deployer)
  t.equal(r.status, 200)
  t.equal(backend.requests[before]!.headers['x-auth-identity'], 'deployer')
})

t.test('by full DN (RFC 4514 order, escaped comma); roles still apply', async (t) => {
  let r = await httpsCall(`${gw.url}/reader`, pki.ca.cert, certs.bot)
  t.equal(r.status, 200)
  t.equal((r.json.headers as Record<string, string>)['x-auth-identity'], 'acme-bot')
  r = await httpsCall(`${gw.url}/admin`, pki.ca.cert, certs.bot)
  t.equal(r.status, 403)
  t.equal(r.json.code, 'FORBIDDEN')
  r = await httpsCall(`${gw.url}/reader`, pki.ca.cert, certs.botOtherOrg)
  t.equal(r.status, 401, 'same CN, another DN: a full-DN subject does not match on CN alone')
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
})

t.test('a certificate from another CA is refused, even with a configured CN', async (t) => {
  const r = await httpsCall(`${gw.url}/admin`, pki.ca.cert, certs.foreign)
  t.equal(r.status, 401)
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
  t.equal(r.json.error, 'Invalid client certificate')
  const line = await gw.waitForLog((l) => l.msg === 'auth' && l.fp === fpOf(certs.foreign))
  t.match(line, { event: 'deny', reason: 'INVALID_CREDENTIALS', authMethod: 'mtls' })
})

t.test('a valid certificate naming no identity is refused', async (t) => {
  const r = await httpsCall(`${gw.url}/admin`, pki.ca.cert, certs.nobody)
  t.equal(r.status, 401)
  t.equal(r.json.code, 'INVALID_CREDENTIALS')
})

t.test('no certificate: 401 MISSING_CREDENTIALS on an mtls route, public routes still work', async (t) => {
  let r = await httpsCall(`${gw.url}/admin`, pki.ca.cert)
  t.equal(r.status, 401)
  t.equal(r.json.code, 'MISSING_CREDENTIALS')
  t.equal(r.json.error, 'Missing client certificate')
  t.match(r.headers['www-authenticate'], /ClientCertificate/)
  r = await httpsCall(`${gw.url}/health`, pki.ca.cert)
  t.equal(r.status, 200)
  r = await httpsCall(`${gw.url}/health`, pki.ca.cert, certs.foreign)
  t.equal(r.status, 200, 'an untrusted certificate does not matter on a public route')
})

t.test('a route accepting bearer or mtls takes either', async (t) => {
  let r = await httpsCall(`${gw.url}/either`, pki.ca.cert, undefined, { authorization: `Bearer ${OPS_TOKEN}` })
  t.equal(r.status, 200)
  t.equal((r.json.headers as Record<string, string>)['x-auth-identity'], 'ops')
  r = await httpsCall(`${gw.url}/either`, pki.ca.cert, certs.ci)
  t.equal((r.json.headers as Record<string, string>)['x-auth-identity'], 'ci-runner')
  r = await httpsCall(`${gw.url}/either`, pki.ca.cert, certs.ci, { authorization: 'Bearer wrong-token' })
  t.equal(r.status, 200, 'a certificate is not a header credential: no ambiguity, the valid one wins')
})

t.test('the gateway output never holds a secret', async (t) => {
  t.notMatch(gw.output(), OPS_TOKEN)
  t.notMatch(gw.output(), /BEGIN .*PRIVATE KEY/)
})

t.test('config: an mtls identity without server.tls.clientCa is an error', async (t) => {
  const file = writeConfig(`version: 1
upstreams:
  b: { url: "http://127.0.0.1:9" }
identities:
  - name: ci-runner
    mtls: { subject: "CN=ci-runner" }
routes:
  - { path: /x, upstream: b, auth: [mtls] }
`)
  const r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /gateway\.yaml:6:\d+: error: identities\[0\]\.mtls: an mtls identity needs server\.tls\.clientCa/)
  t.notMatch(r.stdout + r.stderr, /unknown auth method/, 'no cascade of errors')
})

t.test('config: two identities with the same subject are an error', async (t) => {
  const file = writeConfig(`version: 1
server:
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  b: { url: "http://127.0.0.1:9" }
identities:
  - { name: a, mtls: { subject: "CN=x" } }
  - { name: b, mtls: { subject: "cn = x" } }
routes:
  - { path: /x, upstream: b, auth: [mtls] }
`)
  const r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /identities\[1\]\.mtls\.subject: this subject is already given to identity "a"/)
})
