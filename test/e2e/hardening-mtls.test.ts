// Regressions of the mTLS attack findings (issue 10 item 1, DESIGN §4.5): a client authenticated by one
// certificate renegotiated TLS 1.2 with a self-signed `CN=admin-bot` and was forwarded as admin-bot; and a
// CA removed from clientCa kept being trusted after a reload.
import t from 'tap'
import { connect, type TLSSocket } from 'node:tls'
import { writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { startBackend, startGateway, type Backend, type RunningGateway } from './harness.js'
import { makePki, type Pem, type TestPki } from './certs.js'

let pki: TestPki
let backend: Backend
let gw: RunningGateway
let reader: Pem

const config = (clientCa: string) => `version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, clientCa: ${clientCa} }
upstreams:
  backend: { url: "${backend.url}" }
identities:
  - name: reader-node
    roles: [reader]
    mtls: { subject: "CN=reader-node" }
  - name: admin-bot
    roles: [admin]
    mtls: { subject: "CN=admin-bot" }
routes:
  - { path: /health, upstream: backend, public: true }
  - { path: /read, upstream: backend, auth: [mtls] }
  - { path: /admin, upstream: backend, auth: [mtls], roles: [admin] }
`

t.before(async () => {
  pki = makePki()
  reader = pki.client('reader-node')
  backend = await startBackend()
  gw = await startGateway(config(pki.ca.certFile), {}, 30_000)
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

/** One TLS 1.2 connection (renegotiation exists only up to 1.2), kept open for several requests. */
async function tls12(client: Pem): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', port: gw.port, ca: pki.ca.cert, cert: client.cert, key: client.key, maxVersion: 'TLSv1.2', servername: 'localhost' })
  await once(socket, 'secureConnect')
  return socket
}

/** Writes one request and reads until the response's status line and headers arrived (bounded). */
function exchange(socket: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const done = () => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('close', done)
      socket.off('error', done)
      resolve(text)
    }
    const onData = (d: Buffer) => {
      text += d.toString('latin1')
      if (/\r\n\r\n[\s\S]*\}$/.test(text)) done()
    }
    const timer = setTimeout(done, 5000)
    socket.on('data', onData)
    socket.once('close', done)
    socket.once('error', done)
    if (!socket.destroyed) socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`)
  })
}

t.test('regression: client-initiated TLS renegotiation is refused, the identity stays the handshake certificate', async (t) => {
  const socket = await tls12(reader)
  socket.on('error', () => undefined)
  const first = await exchange(socket, '/read')
  t.match(first, /^HTTP\/1\.1 200/, 'the handshake certificate authenticates')
  const seen = backend.requests.length
  const renegotiated = await new Promise<Error | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 5000)
    const ok = socket.renegotiate({ rejectUnauthorized: false }, (err) => {
      clearTimeout(timer)
      resolve(err ?? null)
    })
    if (!ok) {
      clearTimeout(timer)
      resolve(new Error('renegotiate() refused locally'))
    }
  })
  // Whatever the client saw, the gateway must not keep serving the connection after a renegotiation attempt.
  const after = await exchange(socket, '/admin')
  t.notMatch(after, /^HTTP\/1\.1 200/, 'no request is served after a renegotiation attempt')
  t.ok(renegotiated !== null || socket.destroyed || after === '', `renegotiation failed (${renegotiated?.message ?? 'connection closed'})`)
  t.equal(backend.requests.filter((r) => r.url === '/admin').length, 0, 'nothing reached the admin route')
  t.equal(backend.requests.length, seen, 'the backend received nothing after the attempt')
  socket.destroy()
})

t.test('regression: a CA removed from clientCa is no longer trusted after a reload', async (t) => {
  const before = await tls12(reader)
  t.match(await exchange(before, '/read'), /^HTTP\/1\.1 200/, 'trusted before the reload')
  before.destroy()
  pki.foreignClient('/CN=someone') // makes the other CA
  const otherCa = `${pki.dir}/other-ca.crt`
  writeFileSync(gw.configFile, config(otherCa))
  gw.child.kill('SIGHUP')
  await gw.waitForLog((l) => l.msg === 'config.reload' && l.result === 'ok', 15_000)
  const socket = connect({ host: '127.0.0.1', port: gw.port, ca: pki.ca.cert, cert: reader.cert, key: reader.key, servername: 'localhost' })
  socket.on('error', () => undefined)
  await once(socket, 'secureConnect')
  const reply = await exchange(socket, '/read')
  t.match(reply, /^HTTP\/1\.1 401/, 'a certificate of the removed CA is refused on a new connection')
  socket.destroy()
})
