// DESIGN §4.6 through real sockets: a jwt scheme whose JWKS is a URL served by a test server whose keys
// change and which can be stopped. Cool-down and TTL arithmetic are covered by the unit test with a clock.
import t from 'tap'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { SignJWT } from 'jose'
import { runCli, startBackend, startGateway, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { send } from './raw-http.js'
import { makePki, type TestPki } from './certs.js'

interface Issuer {
  url: string
  fetches: number
  /** The key set served from now on. */
  serve(keys: { kid: string; key: KeyObject }[]): void
  stop(): Promise<void>
}

async function startIssuer(tls?: { cert: string; key: string }): Promise<Issuer> {
  let body = '{"keys":[]}'
  const issuer = { fetches: 0 } as Issuer
  const handler = (_req: unknown, res: import('node:http').ServerResponse) => {
    issuer.fetches++
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' })
    res.end(body)
  }
  const server: Server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  issuer.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  issuer.serve = (keys) => {
    body = JSON.stringify({ keys: keys.map(({ kid, key }) => ({ ...key.export({ format: 'jwk' }), kid, use: 'sig', alg: 'EdDSA' })) })
  }
  issuer.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  return issuer
}

function ed25519() {
  return generateKeyPairSync('ed25519')
}

async function token(kid: string, key: KeyObject, sub = 'job-1'): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ roles: ['worker'] }).setProtectedHeader({ alg: 'EdDSA', kid }).setSubject(sub).setIssuedAt(now).setExpirationTime(now + 300).setJti(randomUUID()).sign(key)
}

function config(backend: Backend, jwks: string, extra = ''): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
upstreams:
  backend: { url: "${backend.url}" }
schemes:
  jobs:
    type: jwt
    jwks: "${jwks}"
    jwksCacheTtl: 1s${extra}
routes:
  - { path: /jobs, upstream: backend, auth: [jobs], roles: [worker] }
`
}

async function readyz(gw: RunningGateway): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gw.adminUrl}/readyz`)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`not reached: ${what}`)
}

let backend: Backend
let pki: TestPki
t.before(async () => {
  backend = await startBackend()
  pki = makePki()
})
t.teardown(async () => {
  await backend?.close()
})

t.test('fetched at start; a token of a key the set holds passes; a rotated key is not fetched within the cool-down', async (t) => {
  const issuer = await startIssuer()
  const k1 = ed25519()
  const k2 = ed25519()
  issuer.serve([{ kid: 'k1', key: k1.publicKey }])
  const gw = await startGateway(config(backend, issuer.url))
  t.teardown(async () => {
    await gw.stop()
    await issuer.stop()
  })
  await until('first fetch', async () => (await readyz(gw)).status === 200)
  t.equal(issuer.fetches, 1, 'fetched once, at start, before any request')
  let r = await send(gw.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(r.status, 200)
  t.equal((r.json?.headers as Record<string, string>)['x-auth-identity'], 'jobs:job-1')

  issuer.serve([{ kid: 'k2', key: k2.publicKey }])
  r = await send(gw.url, '/jobs', { headers: { authorization: `Bearer ${await token('k2', k2.privateKey)}` } })
  t.equal(r.status, 401, 'unknown kid within 30 s of the previous fetch: no fetch, refused')
  t.equal(r.json?.code, 'INVALID_CREDENTIALS')
  await new Promise((res) => setTimeout(res, 1200))
  r = await send(gw.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(r.status, 200, 'past the ttl but within the cool-down: the cached set still serves')
  t.equal(issuer.fetches, 1, 'never a second fetch within 30 s, whatever asked')

  await issuer.stop()
  r = await send(gw.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(r.status, 200, 'the issuer gone: the last good set keeps serving')
  t.equal((await readyz(gw)).status, 200, 'and the gateway stays ready')
  t.notMatch(gw.output(), /"x":"/, 'no key material in the output')
})

t.test('never fetched: 503 STATE_UNAVAILABLE "Key set unavailable" and /readyz says so', async (t) => {
  const issuer = await startIssuer()
  const url = issuer.url
  await issuer.stop() // nothing listens there any more
  const k1 = ed25519()
  const gw = await startGateway(config(backend, url))
  t.teardown(() => gw.stop())
  const r = await send(gw.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(r.status, 503)
  t.match(r.json, { code: 'STATE_UNAVAILABLE', error: 'Key set unavailable' })
  const ready = await readyz(gw)
  t.equal(ready.status, 503)
  t.equal(ready.body.reason, 'Key set unavailable')
  const none = await send(gw.url, '/jobs')
  t.equal(none.status, 401, 'no token: still MISSING_CREDENTIALS, the key set is not needed')
})

t.test('https with a private CA: jwksCa trusts it; without it the set is never fetched', async (t) => {
  const issuer = await startIssuer({ cert: pki.server.cert, key: pki.server.key })
  const k1 = ed25519()
  issuer.serve([{ kid: 'k1', key: k1.publicKey }])
  t.teardown(() => issuer.stop())
  const trusted = await startGateway(config(backend, issuer.url, `\n    jwksCa: ${pki.ca.certFile}`))
  t.teardown(() => trusted.stop())
  await until('first fetch over https', async () => (await readyz(trusted)).status === 200)
  const ok = await send(trusted.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(ok.status, 200)
  const untrusting = await startGateway(config(backend, issuer.url))
  t.teardown(() => untrusting.stop())
  const r = await send(untrusting.url, '/jobs', { headers: { authorization: `Bearer ${await token('k1', k1.privateKey)}` } })
  t.equal(r.status, 503, 'a certificate the system store does not trust is never accepted')
})

t.test('config: http:// only to a loopback address; jwksCa only with a URL', async (t) => {
  let file = writeConfig(config(backend, 'http://10.1.2.3/jwks.json'))
  let r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /schemes\.jobs\.jwks: http:\/\/ is allowed only to a loopback address/)
  file = writeConfig(config(backend, 'ftp://127.0.0.1/jwks.json'))
  r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /schemes\.jobs\.jwks: must be https:\/\//)
  file = writeConfig(config(backend, '/nonexistent/jwks.json', `\n    jwksCa: ${pki.ca.certFile}`))
  r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout + r.stderr, /schemes\.jobs\.jwksCa: applies only when jwks is an https:\/\/ URL/)
})
