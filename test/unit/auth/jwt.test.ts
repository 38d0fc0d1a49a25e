// The jwt scheme (DESIGN §4.6): what it accepts, and every refusal as TOKEN_EXPIRED or
// INVALID_CREDENTIALS `Invalid token` — never a throw, never `none`, never algorithm confusion.
import t, { type Test } from 'tap'
import { createHmac, createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingMessage } from 'node:http'
import { SignJWT, type JWTPayload } from 'jose'
import { createJwtAuthenticator, jwtScheme } from '../../../src/auth/jwt.js'
import { jwksVerificationKeys } from '../../../src/auth/jwks.js'
import { tokenFingerprint } from '../../../src/auth/credential.js'
import type { AuthOutcome, AuthRequest, Authenticator } from '../../../src/auth/types.js'
import { loadConfigText } from '../../../src/config/load.js'

const NOW = 1_700_000_000_000
const NOW_S = NOW / 1000
const SECRET = 'jwt-secret-0123456789abcdef0123456789abcdef'

function request(authorization: string | undefined, now = NOW): AuthRequest {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization }
  const raw = { headers, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage
  return { raw, method: 'GET', path: '/x', query: '', target: '/x', tls: false, now }
}

const hsAuth = createJwtAuthenticator({
  name: 'jobs',
  keys: jwksVerificationKeysOrThrow(undefined),
  issuer: 'portcullis',
  audience: 'orchestrator',
  maxTtlMs: 15 * 60_000,
  rolesClaim: 'roles',
  roles: [],
})

/** The HS256 key of SECRET (undefined), or the keys of a JWKS text. */
function jwksVerificationKeysOrThrow(text: string | undefined) {
  if (text === undefined) return [{ key: createSecretKey(Buffer.from(SECRET, 'utf8')), algorithms: ['HS256'] }]
  const r = jwksVerificationKeys(text)
  if (!r.ok) throw new Error(r.message)
  return r.keys
}

function claims(extra: JWTPayload = {}): JWTPayload {
  return { iss: 'portcullis', aud: 'orchestrator', sub: 'worker-1', iat: NOW_S, exp: NOW_S + 600, roles: ['worker'], ...extra }
}

async function hs256(payload: JWTPayload, secret = SECRET, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', ...header }).sign(Buffer.from(secret, 'utf8'))
}

/** A token signed by hand (for headers jose refuses to produce, and for alg confusion). */
function handmade(header: object, payload: object, sign: (input: string) => string): string {
  const input = Buffer.from(JSON.stringify(header)).toString('base64url') + '.' + Buffer.from(JSON.stringify(payload)).toString('base64url')
  return input + '.' + sign(input)
}

async function outcome(a: Authenticator, token: string, now = NOW): Promise<AuthOutcome> {
  return a.authenticate(request(`Bearer ${token}`, now))
}

function denied(t: Test, o: AuthOutcome, code: string, token: string) {
  t.equal(o.kind, 'deny')
  if (o.kind !== 'deny') return
  t.equal(o.code, code)
  if (code === 'INVALID_CREDENTIALS') t.equal(o.message, 'Invalid token')
  t.equal(o.fp, tokenFingerprint(token), 'fp is the token fingerprint, even for a refused token')
}

t.test('a valid HS256 token: identity = sub, roles from the claim, method = scheme name', async (t) => {
  const token = await hs256(claims())
  const o = await outcome(hsAuth, token)
  t.equal(o.kind, 'identity')
  if (o.kind !== 'identity') return
  const { claims: got, ...rest } = o.identity
  t.same(rest, { name: 'jobs:worker-1', roles: ['worker'], method: 'jobs', fp: tokenFingerprint(token), expiresAt: (NOW_S + 600) * 1000 })
  t.match(got, { sub: 'worker-1', roles: ['worker'] }, 'claims are the verified payload (DESIGN §4.9)')
})

t.test('presence, kind and challenge', async (t) => {
  t.equal(hsAuth.kind, 'bearer')
  t.same(hsAuth.credentialHeaders, ['authorization'])
  t.equal(hsAuth.challenge, 'Bearer realm="portcullis"')
  t.equal(hsAuth.present(request('Bearer abc').raw), true)
  t.equal(hsAuth.present(request('Basic abc').raw), false)
  t.equal(hsAuth.present(request(undefined).raw), false)
  t.same(await hsAuth.authenticate(request(undefined)), { kind: 'absent' })
})

t.test('time: expired, not yet valid, too long-lived → TOKEN_EXPIRED', async (t) => {
  let token = await hs256(claims({ iat: NOW_S - 700, exp: NOW_S - 31 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
  token = await hs256(claims({ iat: NOW_S - 700, exp: NOW_S - 29 }))
  t.equal((await outcome(hsAuth, token)).kind, 'identity', 'within the 30 s clock tolerance')
  token = await hs256(claims({ nbf: NOW_S + 31 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
  token = await hs256(claims({ nbf: NOW_S + 29 }))
  t.equal((await outcome(hsAuth, token)).kind, 'identity', 'nbf within tolerance')
  token = await hs256(claims({ iat: NOW_S, exp: NOW_S + 16 * 60 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
  token = await hs256(claims({ iat: NOW_S - 14 * 60, exp: NOW_S + 2 * 60 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
  token = await hs256(claims({ iat: undefined, exp: NOW_S + 16 * 60 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
  token = await hs256(claims({ iat: undefined, exp: NOW_S + 14 * 60 }))
  t.equal((await outcome(hsAuth, token)).kind, 'identity', 'no iat: exp - now is the lifetime')
  token = await hs256(claims({ iat: NOW_S + 120, exp: NOW_S + 300 }))
  denied(t, await outcome(hsAuth, token), 'TOKEN_EXPIRED', token)
})

t.test('an expired token with a wrong signature is INVALID, not EXPIRED', async (t) => {
  const token = await hs256(claims({ exp: NOW_S - 100 }), 'another-secret-0123456789abcdef0123456789')
  denied(t, await outcome(hsAuth, token), 'INVALID_CREDENTIALS', token)
})

t.test('every other fault → INVALID_CREDENTIALS `Invalid token`', async (t) => {
  const cases: Array<[string, string]> = [
    ['wrong issuer', await hs256(claims({ iss: 'someone-else' }))],
    ['no issuer', await hs256(claims({ iss: undefined }))],
    ['wrong audience', await hs256(claims({ aud: 'pool-manager' }))],
    ['no exp', await hs256(claims({ exp: undefined }))],
    ['no sub', await hs256(claims({ sub: undefined }))],
    ['sub with a control byte', await hs256(claims({ sub: 'a\nb' }))],
    ['roles not an array', await hs256(claims({ roles: 'admin' }))],
    ['roles holding a non-string', await hs256(claims({ roles: ['worker', 7] }))],
    ['a role with a comma', await hs256(claims({ roles: ['a,b'] }))],
    ['wrong secret', await hs256(claims(), 'another-secret-0123456789abcdef0123456789')],
    ['not a JWT', 'opaque-static-token-0123456789'],
    ['garbage header', 'e30x.e30.e30'],
  ]
  const good = await hs256(claims())
  const [h, p] = good.split('.')
  cases.push(['tampered payload', `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')}.${good.split('.')[2]}`])
  cases.push(['alg none', handmade({ alg: 'none' }, claims(), () => '')])
  cases.push(['alg none with a signature', `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.${good.split('.')[2]}`])
  cases.push(['HS512 with the same secret', handmade({ alg: 'HS512' }, claims(), (i) => createHmac('sha512', SECRET).update(i).digest('base64url'))])
  for (const [name, token] of cases) {
    const o = await outcome(hsAuth, token)
    t.equal(o.kind, 'deny', name)
    if (o.kind === 'deny') {
      t.equal(o.code, 'INVALID_CREDENTIALS', name)
      t.equal(o.message, 'Invalid token', name)
    }
  }
})

t.test('roles: absent claim → none; scheme roles are added; a custom rolesClaim', async (t) => {
  const a = createJwtAuthenticator({ name: 'jobs', keys: jwksVerificationKeysOrThrow(undefined), maxTtlMs: 900_000, rolesClaim: 'groups', roles: ['job'] })
  let o = await outcome(a, await hs256(claims({ roles: undefined })))
  t.same(o.kind === 'identity' && o.identity.roles, ['job'])
  o = await outcome(a, await hs256(claims({ groups: ['admin'], roles: ['ignored'] })))
  t.same(o.kind === 'identity' && o.identity.roles, ['job', 'admin'])
  o = await outcome(a, await hs256(claims({ iss: 'anyone', aud: 'anything' })))
  t.equal(o.kind, 'identity', 'no issuer / audience configured: not checked')
})

function ed25519(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519')
}

t.test('jwks: EdDSA and ES256 accepted, kid honoured; HS256 signed with the public key refused', async (t) => {
  const ed = ed25519()
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwks = { keys: [{ ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed-1' }, { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256' }] }
  const a = createJwtAuthenticator({ name: 'cluster', keys: jwksVerificationKeysOrThrow(JSON.stringify(jwks)), maxTtlMs: 900_000, rolesClaim: 'roles', roles: [] })
  const edToken = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA', kid: 'ed-1' }).sign(ed.privateKey)
  t.equal((await outcome(a, edToken)).kind, 'identity', 'EdDSA')
  const edNoKid = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA' }).sign(ed.privateKey)
  t.equal((await outcome(a, edNoKid)).kind, 'identity', 'EdDSA without kid')
  const ecToken = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).sign(ec.privateKey)
  t.equal((await outcome(a, ecToken)).kind, 'identity', 'ES256')
  const wrongKid = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA', kid: 'ec-1' }).sign(ed.privateKey)
  t.equal((await outcome(a, wrongKid)).kind, 'deny', 'kid naming another key')
  const other = ed25519()
  const foreign = await new SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA' }).sign(other.privateKey)
  t.equal((await outcome(a, foreign)).kind, 'deny', 'a key not in the JWKS')
  // Algorithm confusion: HS256 keyed with the public key's bytes (PEM, DER and raw x).
  const pem = ed.publicKey.export({ format: 'pem', type: 'spki' }) as string
  const der = ed.publicKey.export({ format: 'der', type: 'spki' })
  const raw = Buffer.from(jwks.keys[0]!.x as string, 'base64url')
  for (const [what, secret] of [['PEM', Buffer.from(pem)], ['DER', der], ['raw', raw]] as const) {
    const token = handmade({ alg: 'HS256', kid: 'ed-1' }, claims(), (i) => createHmac('sha256', secret).update(i).digest('base64url'))
    const o = await outcome(a, token)
    t.ok(o.kind === 'deny' && o.code === 'INVALID_CREDENTIALS', `HS256 keyed with the ${what} public key`)
  }
  const hsToken = await hs256(claims())
  t.equal((await outcome(a, hsToken)).kind, 'deny', 'HS256 never accepted by a jwks scheme')
  const expired = await new SignJWT(claims({ exp: NOW_S - 100 })).setProtectedHeader({ alg: 'EdDSA' }).sign(ed.privateKey)
  t.ok(((o) => o.kind === 'deny' && o.code === 'TOKEN_EXPIRED')(await outcome(a, expired)), 'expired EdDSA token')
})

t.test('jwksVerificationKeys refuses what it cannot verify with', async (t) => {
  const ed = ed25519()
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not valid JSON/],
    ['no keys', '{"keys": []}', /at least one key/],
    ['a private key', JSON.stringify({ keys: [ed.privateKey.export({ format: 'jwk' })] }), /private key/],
    ['RSA', JSON.stringify({ keys: [rsa.publicKey.export({ format: 'jwk' })] }), /only Ed25519/],
    ['P-384', JSON.stringify({ keys: [p384.publicKey.export({ format: 'jwk' })] }), /only Ed25519/],
    ['an oct key', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /only Ed25519/],
    ['alg not fitting the key', JSON.stringify({ keys: [{ ...ed.publicKey.export({ format: 'jwk' }), alg: 'ES256' }] }), /does not fit/],
    ['a broken key', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }] }), /not a valid public key/],
  ]
  for (const [name, text, message] of bad) {
    const r = jwksVerificationKeys(text)
    t.equal(r.ok, false, name)
    if (!r.ok) t.match(r.message, message, name)
  }
})

t.test('config: exactly one of secret / jwks; jwks problems are config errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-jwt-'))
  const env = { JOB_SECRET: SECRET }
  const base = (scheme: string) => `version: 1\nupstreams:\n  o: { url: "http://127.0.0.1:9" }\nschemes:\n  jobs:\n${scheme}\nroutes:\n  - { path: /x, upstream: o, auth: [jobs] }\n`
  let r = loadConfigText(base('    type: jwt\n    issuer: portcullis'), join(dir, 'a.yaml'), env)
  t.equal(r.ok, false)
  if (!r.ok) t.match(r.errors[0]!.message, /exactly one of `secret`/)
  const ed = ed25519()
  const jwksFile = join(dir, 'jwks.json')
  writeFileSync(jwksFile, JSON.stringify({ keys: [ed.publicKey.export({ format: 'jwk' })] }))
  r = loadConfigText(base(`    type: jwt\n    secret: "\${env:JOB_SECRET}"\n    jwks: ${jwksFile}`), join(dir, 'b.yaml'), env)
  t.equal(r.ok, false, 'both')
  r = loadConfigText(base(`    type: jwt\n    jwks: ${jwksFile}`), join(dir, 'c.yaml'), env)
  t.equal(r.ok, true, 'jwks alone')
  r = loadConfigText(base(`    type: jwt\n    secret: "\${env:JOB_SECRET}"`), join(dir, 'd.yaml'), env)
  t.equal(r.ok, true, 'secret alone')
  const privFile = join(dir, 'private.json')
  writeFileSync(privFile, JSON.stringify({ keys: [ed.privateKey.export({ format: 'jwk' })] }))
  r = loadConfigText(base(`    type: jwt\n    jwks: ${privFile}`), join(dir, 'e.yaml'), env)
  t.equal(r.ok, false)
  if (!r.ok) {
    t.match(r.errors[0]!.message, /schemes\.jobs\.jwks: .*private key/)
    t.notMatch(r.errors[0]!.message, /"d"/)
  }
  r = loadConfigText(base(`    type: jwt\n    jwks: ${join(dir, 'missing.json')}`), join(dir, 'f.yaml'), env)
  t.equal(r.ok, false)
  if (!r.ok) t.match(r.errors[0]!.message, /cannot read .*ENOENT/)
  t.equal(jwtScheme.type, 'jwt')
})

t.test('the sub of a refused token was logged as the identity: it is only `claimed`', async (t) => {
  const ok = await outcome(hsAuth, await hs256(claims({ sub: 'victim' })))
  t.match(ok, { kind: 'identity', identity: { name: 'jobs:victim' } }, 'identity = <scheme>:<sub>')
  const forged = await outcome(hsAuth, await hs256(claims({ sub: 'victim' }), 'not-the-secret-0123456789abcdef0123456789'))
  t.match(forged, { kind: 'deny', code: 'INVALID_CREDENTIALS', claimed: 'victim' })
  t.notOk('identity' in forged)
  const expired = await outcome(hsAuth, await hs256(claims({ sub: 'victim', iat: NOW_S - 900, exp: NOW_S - 600 })))
  t.match(expired, { kind: 'deny', code: 'TOKEN_EXPIRED', claimed: 'victim' })
  const noSub = await outcome(hsAuth, await hs256(claims({ sub: undefined }), 'not-the-secret-0123456789abcdef0123456789'))
  t.notOk('claimed' in noSub, 'nothing claimed, nothing logged')
})
