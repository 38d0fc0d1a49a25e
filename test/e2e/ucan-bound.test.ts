// DESIGN §4.9 for UCAN through real TLS sockets: with `bindCertificate: true` an invocation is
// accepted only on a connection whose verified client certificate has the invoker's DID as a URI SAN.
import t from 'tap'
import { request } from 'node:https'
import { generateKeyPairSync } from 'node:crypto'
import { startBackend, startGateway, type Backend, type RunningGateway } from './harness.js'
import { makePki, type Pem, type TestPki } from './certs.js'
import { ucanDelegate, ucanDid, ucanInvocation } from '../../src/client/ucan.js'

const root = generateKeyPairSync('ed25519').privateKey
const worker = generateKeyPairSync('ed25519').privateKey
const ROOT = ucanDid(root)
const WORKER = ucanDid(worker)
const dlg = ucanDelegate({ key: root, aud: WORKER, sub: ROOT, cmd: '/pool' })

let pki: TestPki
let backend: Backend
let gw: RunningGateway
let mine: Pem
let other: Pem

function post(path: string, authorization: string, client?: Pem): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(gw.url + path, { method: 'POST', ca: pki.ca.cert, ...(client ? { cert: client.cert, key: client.key } : {}), headers: { authorization, 'content-length': '0' }, agent: false, timeout: 10_000 }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => {
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(text) as Record<string, unknown>
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode!, json })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

const invocation = () => ucanInvocation({ key: worker, sub: ROOT, cmd: '/pool/preload', proofs: [dlg], method: 'POST', target: '/pools/7/preload' }).authorization

t.before(async () => {
  pki = makePki()
  mine = pki.client('worker', { san: `URI:${WORKER}` })
  other = pki.client('other', { san: `URI:${ucanDid(generateKeyPairSync('ed25519').privateKey)}` })
  backend = await startBackend()
  gw = await startGateway(`version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${pki.ca.certFile} }
upstreams:
  pool-manager: { url: "${backend.url}" }
schemes:
  cluster: { type: ucan, subjects: ["${ROOT}"], bindCertificate: true }
routes:
  - { path: /pools/:id/preload, methods: [POST], upstream: pool-manager, auth: [cluster], command: /pool/preload }
`)
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

t.test('accepted with the certificate that names the invoker DID', async (t) => {
  const r = await post('/pools/7/preload', invocation(), mine)
  t.equal(r.status, 200, JSON.stringify(r.json))
})

t.test('refused with another certificate, or none: Token not bound to this certificate', async (t) => {
  for (const client of [other, undefined]) {
    const r = await post('/pools/7/preload', invocation(), client)
    t.same([r.status, r.json.code, r.json.error], [401, 'INVALID_CREDENTIALS', 'Token not bound to this certificate'])
  }
})
