// DESIGN §4.5 SAN forms through real sockets: `DNS:`, `IP:` (IPv4 and IPv6, any spelling), `URI:` (SPIFFE
// IDs), `email:` and the subject DN, each against a certificate made by openssl at test time.
import t from 'tap'
import { request } from 'node:https'
import { runCli, startBackend, startGateway, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { makePki, type Pem, type TestPki } from './certs.js'

function call(url: string, ca: string, client: Pem): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, cert: client.cert, key: client.key, agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) as Record<string, unknown> }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

let pki: TestPki
let backend: Backend
let gw: RunningGateway
const identities = `
  - { name: by-dns, mtls: { san: "DNS:node-1.cluster.example" } }
  - { name: by-ipv4, mtls: { san: "IP:10.0.0.7" } }
  - { name: by-ipv6, mtls: { san: "IP:2001:db8::7" } }
  - { name: by-spiffe, mtls: { san: "URI:spiffe://cluster/ns/prod/sa/worker" } }
  - { name: by-email, mtls: { san: "email:Ops@Example.com" } }
  - { name: by-dn, mtls: { subject: "CN=svc, OU=Ops, O=Acme" } }`

t.before(async () => {
  pki = makePki()
  backend = await startBackend()
  gw = await startGateway(`version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  backend: { url: "${backend.url}" }
identities:${identities}
routes:
  - { path: /who, upstream: backend, auth: [mtls] }
`)
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

const cases: [string, { subject?: string; san?: string }, string | null][] = [
  ['DNS, any case', { san: 'DNS:Node-1.Cluster.Example' }, 'by-dns'],
  ['DNS of another host', { san: 'DNS:node-2.cluster.example' }, null],
  ['IPv4', { san: 'IP:10.0.0.7' }, 'by-ipv4'],
  ['IPv6 (Node prints it in full, upper-case)', { san: 'IP:2001:DB8:0:0:0:0:0:7' }, 'by-ipv6'],
  ['an IP written as a DNS name is not the IP', { san: 'DNS:10.0.0.7' }, null],
  ['SPIFFE ID', { san: 'URI:spiffe://cluster/ns/prod/sa/worker' }, 'by-spiffe'],
  ['SPIFFE ID with a longer path', { san: 'URI:spiffe://cluster/ns/prod/sa/worker/x' }, null],
  ['SPIFFE ID in the CN is not a URI SAN', { subject: '/CN=spiffe:\\/\\/cluster\\/ns\\/prod\\/sa\\/worker' }, null],
  ['email, domain in any case', { san: 'email:Ops@EXAMPLE.com' }, 'by-email'],
  ['email, another local part', { san: 'email:ops2@example.com' }, null],
  ['subject DN', { subject: '/O=Acme/OU=Ops/CN=svc' }, 'by-dn'],
  ['subject DN with another OU', { subject: '/O=Acme/OU=Dev/CN=svc' }, null],
]

for (const [what, o, expected] of cases) {
  t.test(what, async (t) => {
    const r = await call(`${gw.url}/who`, pki.ca.cert, pki.client(`c${Math.random().toString(36).slice(2, 8)}`, o))
    if (expected === null) {
      t.equal(r.status, 401)
      t.equal(r.json.code, 'INVALID_CREDENTIALS')
    } else {
      t.equal(r.status, 200)
      t.equal((r.json.headers as Record<string, string>)['x-auth-identity'], expected)
    }
  })
}

t.test('config: a san that is not of its type is an error naming the field', async (t) => {
  const file = writeConfig(`version: 1
server:
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  b: { url: "http://127.0.0.1:9" }
identities:
  - { name: a, mtls: { san: "IP:10.0.0.300" } }
  - { name: b, mtls: { san: "IP:::0:7" } }
  - { name: c, mtls: { san: "IP:0:0::7" } }
routes:
  - { path: /x, upstream: b, auth: [mtls] }
`)
  const r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /identities\[0\]\.mtls\.san: must be DNS:name, IP:address/)
  t.match(r.stdout + r.stderr, /identities\[2\]\.mtls\.san: this san is already given to identity "b"/, 'two spellings of one address are one address')
})
