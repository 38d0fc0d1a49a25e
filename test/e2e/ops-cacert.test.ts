// `--cacert FILE` of `sign --send` and `join` (DESIGN §1) against a TLS gateway whose certificate an
// openssl-made private CA signed; without it the failure is named "certificate verify failed", never
// "cannot reach" or "fetch failed".
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { makePki } from './certs.js'
import { runCli, startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'

const env = { WORKER_MASTER_KEY: testSecret('master'), JOIN_PSK: testSecret('psk') }
const pki = makePki()
let backend: Backend
let gw: RunningGateway
let base: string

t.before(async () => {
  backend = await startBackend()
  gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} }
upstreams:
  pool-manager: { url: "${backend.url}" }
schemes:
  signed: { type: rfc9421, derive: "\${env:WORKER_MASTER_KEY}", roles: [worker] }
join: { psk: "\${env:JOIN_PSK}", scheme: signed }
routes:
  - { prefix: /pools/, upstream: pool-manager, auth: [signed], roles: [worker] }
`,
    env,
  )
  base = gw.url.replace(/^http:/, 'https:')
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

const NOT_REACH = /cannot reach|fetch failed|request failed/

t.test('join over TLS: without --cacert "certificate verify failed", with it the key', async (t) => {
  t.match(base, /^https:\/\/127\.0\.0\.1:\d+$/)
  const untrusted = await runCli(['join', '--url', base, '--key-id', 'worker-1', '--psk-env', 'JOIN_PSK'], env)
  t.equal(untrusted.code, 1)
  t.match(untrusted.stderr, /^join: certificate verify failed: .+/)
  t.notMatch(untrusted.stderr, NOT_REACH)
  const trusted = await runCli(['join', '--url', base, '--key-id', 'worker-1', '--psk-env', 'JOIN_PSK', '--cacert', pki.ca.certFile], env)
  t.equal(trusted.code, 0, trusted.stderr)
  t.match(trusted.stdout, /^[0-9a-f]{64}\n$/)
  const otherCa = makePki().ca.certFile
  const wrongCa = await runCli(['join', '--url', base, '--key-id', 'worker-1', '--psk-env', 'JOIN_PSK', '--cacert', otherCa], env)
  t.equal(wrongCa.code, 1)
  t.match(wrongCa.stderr, /^join: certificate verify failed: /, 'a CA that did not sign the gateway is a verify failure too')
})

t.test('sign --send over TLS: without --cacert "certificate verify failed", with it the response', async (t) => {
  const key = (await runCli(['derive-key', '--master-env', 'WORKER_MASTER_KEY', '--key-id', 'worker-2'], env)).stdout.trim()
  const args = ['sign', '--scheme', 'rfc9421', '--key-id', 'worker-2', '--secret-env', 'WORKER_KEY', '-d', '{"a":1}', `${base}/pools/1/preload`, '--send']
  const untrusted = await runCli(args, { WORKER_KEY: key })
  t.equal(untrusted.code, 1)
  t.match(untrusted.stderr, /^sign: certificate verify failed: .+/)
  t.notMatch(untrusted.stderr, NOT_REACH)
  const before = backend.requests.length
  const trusted = await runCli([...args, '--cacert', pki.ca.certFile], { WORKER_KEY: key })
  t.equal(trusted.code, 0, trusted.stderr)
  t.equal(backend.requests.length, before + 1, 'the signed request reached the backend')
  t.equal(backend.requests.at(-1)!.body.toString(), '{"a":1}')
})

t.test('--cacert that cannot be read, or holds no certificate: named, exit 1', async (t) => {
  const notPem = join(pki.dir, 'not-a-cert.txt')
  writeFileSync(notPem, 'hello\n')
  const missing = await runCli(['join', '--url', base, '--key-id', 'w', '--psk-env', 'JOIN_PSK', '--cacert', '/nonexistent/ca.crt'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /cannot read --cacert \/nonexistent\/ca\.crt \(ENOENT\)/)
  const garbage = await runCli(['sign', '--scheme', 'worker-v1', '--id', 'w', '--secret-env', 'JOIN_PSK', `${base}/pools/1`, '--send', '--cacert', notPem], env)
  t.equal(garbage.code, 1)
  t.match(garbage.stderr, /holds no PEM certificate/)
})

t.test('a gateway that is not there is still "cannot reach", with the reason', async (t) => {
  // A port that was free a moment ago (fetch refuses well-known ports such as 1 outright).
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  const r = await runCli(['join', '--url', `https://127.0.0.1:${port}`, '--key-id', 'w', '--psk-env', 'JOIN_PSK'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, new RegExp(`^join: cannot reach https://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
  t.notMatch(r.stderr, /fetch failed/)
})
