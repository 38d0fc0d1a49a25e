// RemoteKeySet (DESIGN §4.6) against a local HTTP server, with the clock passed in: fetched at start,
// re-fetched after the ttl and on an unknown kid, never within 30 s of the previous attempt, and a failed
// fetch keeps the last good set.
import t from 'tap'
import { createServer } from 'node:http'
import { generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { COOLDOWN_MS, RemoteKeySet, jwksUrlProblem } from '../../../src/auth/jwks-remote.js'

const jwk = (kid: string) => ({ ...generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }), kid })
let body = JSON.stringify({ keys: [jwk('a')] })
let status = 200
let fetches = 0
const server = createServer((_req, res) => {
  fetches++
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(body)
})
t.before(() => new Promise<void>((r) => server.listen(0, '127.0.0.1', r)))
t.teardown(() => new Promise<void>((r) => server.close(() => r())))
const url = () => new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`)
const kids = (keys: readonly { kid?: string }[] | undefined) => keys?.map((k) => k.kid)

t.test('ttl, cool-down, unknown kid and failures', async (t) => {
  fetches = 0
  let clock = 1_000_000
  const set = new RemoteKeySet(url(), 60_000, undefined, () => clock)
  t.equal(set.current(clock), undefined, 'nothing before the first fetch')
  t.equal(set.notReady(), 'Key set unavailable')
  await set.refresh(clock) // joins the fetch current() started
  t.equal(fetches, 1)
  t.same(kids(set.current(clock)), ['a'])
  t.equal(set.notReady(), undefined)

  body = JSON.stringify({ keys: [jwk('b')] })
  clock += COOLDOWN_MS - 1
  t.same(kids(await set.refreshForUnknownKid(clock)), ['a'], 'unknown kid within the cool-down: no fetch')
  t.equal(fetches, 1)
  clock += 1
  t.same(kids(await set.refreshForUnknownKid(clock)), ['b'], 'unknown kid after the cool-down: fetched')
  t.equal(fetches, 2)

  status = 500
  clock += 60_000
  t.same(kids(set.current(clock)), ['b'], 'ttl passed: the cached set serves while the refresh runs')
  await set.refresh(clock)
  t.equal(fetches, 3)
  t.same(kids(set.current(clock)), ['b'], 'a failed fetch keeps the last good set')
  t.equal(fetches, 3, 'and the failure starts a cool-down too')
  body = '{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}'
  status = 200
  clock += COOLDOWN_MS
  await set.refresh(clock)
  t.equal(fetches, 4)
  t.same(kids(set.current(clock)), ['b'], 'a set of unsupported keys is a failed fetch')
})

t.test('never fetched: retried only after the cool-down', async (t) => {
  status = 503
  fetches = 0
  let clock = 5_000_000
  const set = new RemoteKeySet(url(), 60_000, undefined, () => clock)
  set.start()
  await set.refresh(clock)
  t.equal(fetches, 1)
  t.equal(set.notReady(), 'Key set unavailable')
  status = 200
  body = JSON.stringify({ keys: [jwk('c')] })
  await set.refresh(clock + 1000)
  t.equal(fetches, 1, 'not again within 30 s')
  clock += COOLDOWN_MS
  t.equal(set.notReady(), 'Key set unavailable', '/readyz asking is a chance to fetch')
  await set.refresh(clock)
  t.equal(fetches, 2)
  t.equal(set.notReady(), undefined)
})

t.test('jwksUrlProblem', async (t) => {
  t.equal(jwksUrlProblem('https://issuer.example/jwks.json'), undefined)
  t.equal(jwksUrlProblem('http://127.0.0.1:8080/jwks.json'), undefined)
  t.equal(jwksUrlProblem('http://[::1]:8080/jwks.json'), undefined)
  t.equal(jwksUrlProblem('http://localhost/jwks.json'), undefined)
  t.match(jwksUrlProblem('http://issuer.example/jwks.json'), /loopback/)
  t.match(jwksUrlProblem('http://127.0.0.1.evil.example/jwks.json'), /loopback/)
  t.match(jwksUrlProblem('https://user:pw@issuer.example/'), /credentials/)
  t.match(jwksUrlProblem('file:///etc/jwks.json'), /https/)
})
