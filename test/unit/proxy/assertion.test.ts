// DESIGN §8: the request assertion as the gateway signs it and as verifyAssertion checks it —
// every binding (audience, method, path and query, body, time, key) refused when it differs.
import t from 'tap'
import { generateKeyPairSync, sign } from 'node:crypto'
import { assertionJwks, assertionKeyProblem, assertRequest, jwkThumbprint, ASSERTION_TYP } from '../../../src/proxy/assertion.js'
import { compileAssertionSigner } from '../../../src/proxy/assertion-signer.js'
import { verifyAssertion, type VerifyAssertionOptions } from '../../../src/client/assertion.js'
import { computeContentDigest } from '../../../src/auth/content-digest.js'
import type { CompiledRoute, Gateway } from '../../../src/config/compile.js'

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const PEM = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string

function gateway(keyPem = PEM): Gateway {
  return { forward: { identityHeaders: true, credentials: 'strip', assertion: { signer: compileAssertionSigner(keyPem, 60_000) } } } as unknown as Gateway
}
const route = { upstream: { name: 'orchestrator', basePath: '', origin: 'http://127.0.0.1:9' } } as unknown as CompiledRoute
const identity = { name: 'worker-7', roles: ['worker'], method: 'signed', fp: 'key:abcdef' }

async function token(gw: Gateway, o: { method?: string; target?: string; body?: Buffer; basePath?: string } = {}): Promise<string> {
  const r = o.basePath === undefined ? route : ({ upstream: { ...route.upstream, basePath: o.basePath } } as unknown as CompiledRoute)
  const headers = await assertRequest(gw, { identity, route: r, method: o.method ?? 'POST', target: o.target ?? '/pools/1?x=1', ...(o.body ? { body: o.body } : {}), reqId: 'req-1' })
  return headers['x-auth-assertion']!
}

function decode(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>
}

t.test('header and claims as DESIGN §8 names them', async (t) => {
  const gw = gateway()
  const body = Buffer.from('{"a":1}')
  const jws = await token(gw, { body })
  const [h, p] = jws.split('.')
  const jwks = assertionJwks(gw)!
  t.equal(jwks.keys.length, 1)
  const jwk = jwks.keys[0]!
  t.same(decode(h!), { alg: 'EdDSA', kid: jwk.kid, typ: ASSERTION_TYP })
  t.equal(jwk.kid, jwkThumbprint(publicKey.export({ format: 'jwk' })), 'kid = RFC 7638 thumbprint')
  t.notOk('d' in jwk, 'public key only')
  const c = decode(p!)
  t.same(Object.keys(c), ['sub', 'roles', 'amr', 'aud', 'htm', 'htu', 'cdg', 'jti', 'iat', 'exp'])
  t.match(c, { sub: 'worker-7', roles: ['worker'], amr: ['signed'], aud: 'orchestrator', htm: 'POST', htu: '/pools/1?x=1', cdg: computeContentDigest(body), jti: 'req-1' })
  t.equal((c.exp as number) - (c.iat as number), 60)
  const noBody = decode((await token(gw)).split('.')[1]!)
  t.notOk('cdg' in noBody, 'no cdg without a body')
  const based = decode((await token(gw, { basePath: '/api' })).split('.')[1]!)
  t.equal(based.htu, '/api/pools/1?x=1', 'htu is what the upstream receives, its base path included')
})

t.test('assertions off: no header, no JWKS', async (t) => {
  const gw = { forward: { identityHeaders: true, credentials: 'strip' } } as unknown as Gateway
  t.same(await assertRequest(gw, { identity, route, method: 'GET', target: '/', reqId: 'r' }), {})
  t.equal(assertionJwks(gw), undefined)
})

t.test('assertionKeyProblem', async (t) => {
  t.equal(assertionKeyProblem(PEM), undefined)
  t.match(assertionKeyProblem('not a pem at all, but long enough to pass'), /not a PEM private key/)
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
  t.match(assertionKeyProblem(ec), /must be an Ed25519 private key/)
})

t.test('verifyAssertion accepts exactly the request it was made for', async (t) => {
  const gw = gateway()
  const jwks = assertionJwks(gw)!
  const body = Buffer.from('hello')
  const jws = await token(gw, { body })
  const ok: VerifyAssertionOptions = { jwks, audience: 'orchestrator', method: 'POST', pathAndQuery: '/pools/1?x=1', body }
  t.match(verifyAssertion(jws, ok), { sub: 'worker-7', amr: ['signed'] })
  t.ok(verifyAssertion(jws, { ...ok, pathAndQuery: undefined, url: 'http://backend:9000/pools/1?x=1' }), 'full URL')
  t.ok(verifyAssertion(jws, { ...ok, pathAndQuery: undefined, url: '/pools/1?x=1' }), 'origin-form url')
  t.ok(verifyAssertion(jws, { ...ok, jwks: undefined, key: publicKey }), 'a KeyObject')
  t.ok(verifyAssertion(jws, { ...ok, jwks: undefined, key: publicKey.export({ format: 'pem', type: 'spki' }) as string }), 'a PEM')
  t.ok(verifyAssertion(jws, { ...ok, body: 'hello' }), 'a string body')

  const refused: Array<[string, unknown, Partial<VerifyAssertionOptions>, RegExp]> = [
    ['another audience', jws, { audience: 'pool-manager' }, /audience/],
    ['another method', jws, { method: 'DELETE' }, /method/],
    ['another path', jws, { pathAndQuery: '/pools/2?x=1' }, /path/],
    ['another query', jws, { pathAndQuery: '/pools/1?x=2' }, /path/],
    ['no query', jws, { pathAndQuery: '/pools/1' }, /path/],
    ['another body', jws, { body: Buffer.from('hellO') }, /body/],
    ['body not passed', jws, { body: undefined }, /binds a body/],
    ['expired', jws, { now: Date.now() + 70_000 }, /expired/],
    ['issued in the future', jws, { now: Date.now() - 60_000 }, /future/],
    ['another key', jws, { jwks: undefined, key: generateKeyPairSync('ed25519').publicKey }, /signature/],
    ['kid not in the JWKS', jws, { jwks: { keys: [{ ...jwks.keys[0]!, kid: 'other' }] } }, /kid/],
    ['not a JWS', 'abc', {}, /compact JWS/],
    ['repeated header', [jws, jws], {}, /repeated/],
    ['missing', undefined, {}, /missing/],
  ]
  for (const [name, tok, change, message] of refused) t.throws(() => verifyAssertion(tok as string, { ...ok, ...change }), message, name)

  const noBody = await token(gw)
  t.ok(verifyAssertion(noBody, { ...ok, body: undefined }), 'no body, none passed')
  t.ok(verifyAssertion(noBody, { ...ok, body: '' }), 'no body, empty passed')
  t.throws(() => verifyAssertion(noBody, { ...ok, body: 'smuggled' }), /binds no body/)

  const [h, p, s] = jws.split('.')
  const c = decode(p!)
  const forged = Buffer.from(JSON.stringify({ ...c, htm: 'DELETE' })).toString('base64url')
  t.throws(() => verifyAssertion(`${h}.${forged}.${s}`, { ...ok, method: 'DELETE' }), /signature/, 'tampered method')
  const none = Buffer.from(JSON.stringify({ alg: 'none', kid: jwks.keys[0]!.kid, typ: ASSERTION_TYP })).toString('base64url')
  t.throws(() => verifyAssertion(`${none}.${p}.${s}`, ok), /EdDSA/, 'alg none')
  const plainJwt = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: jwks.keys[0]!.kid, typ: 'JWT' })).toString('base64url')
  const resigned = `${plainJwt}.${p}.` + sign(null, Buffer.from(`${plainJwt}.${p}`), privateKey).toString('base64url')
  t.throws(() => verifyAssertion(resigned, ok), /typ/, 'another token type, even signed by the same key')
})

t.test('the kid is what jose computes as the RFC 7638 thumbprint (ours is synchronous, for the config compile)', async (t) => {
  const { calculateJwkThumbprint } = await import('jose')
  const { generateKeyPairSync } = await import('node:crypto')
  for (let i = 0; i < 8; i++) {
    const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
    t.equal(jwkThumbprint(jwk), await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0], 'sha256'))
  }
})
