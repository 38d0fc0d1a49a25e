// Property tests of the credential parsers that need no body: Authorization: Bearer (static tokens
// and jwt schemes), API keys, and worker-v1. Random and mutated inputs never throw, never name the
// credential in a refusal, and never authenticate unless an independent oracle says they should.
import t from 'tap'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { SignJWT, type JWTPayload } from 'jose'
import { createBearerAuthenticator } from '../../../src/auth/bearer.js'
import { createApiKeyAuthenticator } from '../../../src/auth/api-key.js'
import { CredentialTable } from '../../../src/auth/static-credentials.js'
import { createWorkerV1Authenticator, WORKER_V1_MESSAGES } from '../../../src/auth/worker-v1.js'
import { createJwtAuthenticator } from '../../../src/auth/jwt.js'
import { createSecretKey } from 'node:crypto'
import type { AuthOutcome, AuthRequest, Authenticator } from '../../../src/auth/types.js'
import { deliverable, holds, latin1String, mutation, params, trickyChar } from './settings.js'

const NOW = 1_700_000_000_000
const TOKEN = 'tok-Zm9vYmFyYmF6cXV4LTAxMjM0NTY3ODlhYmNkZWY.~+/'
const API_KEY = 'key-0123456789abcdef0123456789abcdef-fuzz'
const WORKER_SECRET = 'worker-secret-0123456789abcdef0123456789'
const JWT_SECRET = 'jwt-secret-0123456789abcdef0123456789abcdef'

function request(headers: Record<string, string>, now = NOW): AuthRequest {
  const lower: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v
  const raw = { headers: lower, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage
  return { raw, method: 'GET', path: '/x', query: '', target: '/x', tls: false, now }
}

const CODES_401 = new Set(['MISSING_CREDENTIALS', 'INVALID_CREDENTIALS', 'INVALID_SIGNATURE', 'TIMESTAMP_SKEW', 'TOKEN_EXPIRED', 'KEY_REVOKED'])

/** Runs one authenticator; a throw is a property failure (it would escape as a 500). */
async function outcome(a: Authenticator, req: AuthRequest): Promise<AuthOutcome> {
  const o = await a.authenticate(req)
  if (o.kind === 'deny' && !CODES_401.has(o.code)) throw new Error(`unexpected refusal code ${o.code}`)
  return o
}

/** A refusal must never carry the credential it refused (only fingerprints). */
function leaks(o: AuthOutcome, secret: string): boolean {
  return secret.length >= 8 && JSON.stringify(o).includes(secret)
}

/** HTTP's optional whitespace: SP and HTAB only (RFC 9110 §5.6.3) — never U+00A0 or other Unicode spaces. */
const stripOws = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '')

// ---------------------------------------------------------------- bearer
const tokens = new CredentialTable()
tokens.add(TOKEN, { name: 'ops', roles: ['admin'] })
const bearer = createBearerAuthenticator(tokens)

/** DESIGN §4.1: scheme word case-insensitive, SP/HTAB around it trimmed, nothing else. */
function bearerOracle(value: string): boolean {
  const m = /^[ \t]*([Bb][Ee][Aa][Rr][Ee][Rr])[ \t]+(.*)$/s.exec(value)
  return m !== null && stripOws(m[2]!) === TOKEN
}

const authorizationValue = fc.oneof(
  latin1String(80),
  fc.string({ unit: 'binary', maxLength: 40 }),
  latin1String(60).map((s) => `Bearer ${s}`),
  mutation(`Bearer ${TOKEN}`),
  mutation(TOKEN).map((m) => `Bearer ${m}`),
  fc.tuple(fc.array(trickyChar, { maxLength: 3 }), fc.array(trickyChar, { maxLength: 3 })).map(([a, b]) => `${a.join('')}Bearer ${TOKEN}${b.join('')}`),
)

t.test('bearer: random and mutated Authorization values never throw, never leak, and authenticate only the exact token', async (t) => {
  await holds(
    t,
    'only the exact bearer token authenticates',
    fc.asyncProperty(authorizationValue.map(deliverable), async (value) => {
      const o = await outcome(bearer, request({ authorization: value }))
      if (leaks(o, value.trim()) && o.kind !== 'identity') throw new Error('a refusal carries the presented token')
      if ((o.kind === 'identity') !== bearerOracle(value)) throw new Error(`${o.kind} for ${JSON.stringify(value)}`)
    }),
    params(1000),
  )
})

// ---------------------------------------------------------------- api key
const apiKeys = new CredentialTable()
apiKeys.add(API_KEY, { name: 'coordinator', roles: ['coordinator'] })
const custom = new CredentialTable()
custom.add(API_KEY + '-custom', { name: 'dashboard', roles: ['reader'] })
const apiKey = createApiKeyAuthenticator(new Map([['x-api-key', apiKeys], ['x-dashboard-key', custom]]))

t.test('apiKey: random and mutated keys never throw, never leak, and authenticate only the exact key in its own header', async (t) => {
  const value = fc.oneof(latin1String(60), mutation(API_KEY), mutation(API_KEY + '-custom'), fc.constant(API_KEY + '-custom'), fc.constant(API_KEY)).map(deliverable)
  await holds(
    t,
    'only the exact key in its own header authenticates',
    fc.asyncProperty(fc.constantFrom('x-api-key', 'X-Api-Key', 'x-dashboard-key', 'x-other-key'), value, async (header, v) => {
      const o = await outcome(apiKey, request({ [header]: v }))
      if (leaks(o, v.trim()) && o.kind !== 'identity') throw new Error('a refusal carries the presented key')
      const h = header.toLowerCase()
      const expected = (h === 'x-api-key' && stripOws(v) === API_KEY) || (h === 'x-dashboard-key' && stripOws(v) === API_KEY + '-custom')
      if ((o.kind === 'identity') !== expected) throw new Error(`${o.kind} for ${header}: ${JSON.stringify(v)}`)
    }),
    params(600),
  )
})

t.test('bearer and apiKey: the credential followed or preceded by U+00A0 (a non-HTTP space) is not the credential', async (t) => {
  // Node delivers these bytes (obs-text) as they are; JavaScript's trim() would eat 0xA0.
  for (const ws of ['\u00a0', '\u0085']) {
    t.not((await outcome(bearer, request({ authorization: `Bearer ${TOKEN}${ws}` }))).kind, 'identity', `token + U+${ws.charCodeAt(0).toString(16).padStart(4, '0')}`)
    t.not((await outcome(bearer, request({ authorization: `${ws}Bearer ${TOKEN}` }))).kind, 'identity', `U+${ws.charCodeAt(0).toString(16).padStart(4, '0')} + header`)
    t.not((await outcome(apiKey, request({ 'x-api-key': `${API_KEY}${ws}` }))).kind, 'identity', `api key + U+${ws.charCodeAt(0).toString(16).padStart(4, '0')}`)
  }
})

// ---------------------------------------------------------------- worker-v1
const worker = createWorkerV1Authenticator({ name: 'workers', secret: WORKER_SECRET, windowMs: 300_000, roles: ['worker'] })
const sign = (id: string, ts: string) => createHmac('sha256', WORKER_SECRET).update(`${id}:${ts}`, 'utf8').digest('hex')
const MESSAGES = new Set<string>(Object.values(WORKER_V1_MESSAGES))

function workerOracle(id: string | undefined, ts: string | undefined, sig: string | undefined): boolean {
  if (!id || !ts || !sig) return false
  return /^[0-9]{1,16}$/.test(ts) && Math.abs(NOW - Number(ts)) <= 300_000 && sig === sign(id, ts)
}

const validWorker = fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,20}$/), fc.integer({ min: -299_000, max: 299_000 })).map(([id, skew]) => {
  const ts = String(NOW + skew)
  return { id, ts, sig: sign(id, ts) }
})

t.test('worker-v1: random headers never throw; refusals use the exact messages; nothing verifies without the secret', async (t) => {
  const part = fc.option(fc.oneof(latin1String(40), fc.stringMatching(/^[0-9a-f]{64}$/), fc.stringMatching(/^[0-9]{1,17}$/), fc.constant(String(NOW))).map(deliverable), { nil: undefined })
  await holds(
    t,
    'random worker-v1 headers',
    fc.asyncProperty(part, part, part, async (id, ts, sig) => {
      const h: Record<string, string> = {}
      if (id !== undefined) h['x-worker-id'] = id
      if (ts !== undefined) h['x-worker-timestamp'] = ts
      if (sig !== undefined) h['x-worker-signature'] = sig
      const o = await outcome(worker, request(h))
      if (o.kind === 'deny' && !MESSAGES.has(o.message ?? '')) throw new Error(`message ${o.message}`)
      if (o.kind === 'deny' && sig && sig.length >= 8 && !id?.includes(sig) && JSON.stringify(o).includes(sig)) throw new Error('a refusal carries the signature')
      if ((o.kind === 'identity') !== workerOracle(id || undefined, ts || undefined, sig || undefined)) throw new Error(`${o.kind} for ${JSON.stringify(h)}`)
    }),
    params(600),
  )
})

t.test('worker-v1: a mutated valid signature, id or timestamp never verifies', async (t) => {
  await holds(
    t,
    'mutated worker-v1 credentials',
    fc.asyncProperty(
      validWorker.chain((v) => fc.tuple(fc.constant(v), fc.constantFrom('id', 'ts', 'sig'), fc.oneof(mutation(v.id), mutation(v.ts, fc.constantFrom('0', '1', '9', ' ', '+', '-', '.', 'e', 'x')), mutation(v.sig)).map(deliverable))),
      async ([v, which, m]) => {
        const h = { 'x-worker-id': which === 'id' ? m : v.id, 'x-worker-timestamp': which === 'ts' ? m : v.ts, 'x-worker-signature': which === 'sig' ? m : v.sig }
        const o = await outcome(worker, request(h))
        const expected = workerOracle(h['x-worker-id'], h['x-worker-timestamp'], h['x-worker-signature'])
        if ((o.kind === 'identity') !== expected) throw new Error(`${o.kind} for ${JSON.stringify(h)}`)
      },
    ),
    params(600),
  )
})

// ---------------------------------------------------------------- jwt
const jwt = createJwtAuthenticator({
  name: 'jobs',
  keys: [{ key: createSecretKey(Buffer.from(JWT_SECRET, 'utf8')), algorithms: ['HS256'] }],
  issuer: 'portcullis',
  audience: 'orchestrator',
  maxTtlMs: 15 * 60_000,
  rolesClaim: 'roles',
  roles: [],
})
const NOW_S = NOW / 1000
const hs256 = (payload: JWTPayload, secret = JWT_SECRET, header: Record<string, unknown> = {}) =>
  new SignJWT(payload).setProtectedHeader({ alg: 'HS256', ...header }).sign(Buffer.from(secret, 'utf8'))
const b64 = (s: string) => Buffer.from(s, 'base64url')

/** The claims DESIGN §4.6 accepts: iss, aud, exp (±30 s), nbf, iat, lifetime ≤ maxTtl, a printable sub. */
function claimsOracle(p: Record<string, unknown>): boolean {
  const audOk = p.aud === 'orchestrator' || (Array.isArray(p.aud) && p.aud.includes('orchestrator'))
  if (p.iss !== 'portcullis' || !audOk) return false
  if (typeof p.exp !== 'number' || !Number.isFinite(p.exp) || p.exp <= NOW_S - 30) return false
  if (p.nbf !== undefined && (typeof p.nbf !== 'number' || p.nbf > NOW_S + 30)) return false
  if (p.iat !== undefined && (typeof p.iat !== 'number' || p.iat > NOW_S + 30)) return false
  const iat = typeof p.iat === 'number' ? p.iat : NOW_S
  if ((p.exp - iat) * 1000 > 15 * 60_000) return false
  if (typeof p.sub !== 'string' || !/^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/.test(p.sub)) return false
  if (p.roles !== undefined && (!Array.isArray(p.roles) || !p.roles.every((r) => typeof r === 'string' && /^[\x21-\x2b\x2d-\x7e]{1,128}$/.test(r)))) return false
  return true
}

const claimValue = <T>(good: fc.Arbitrary<T>) => fc.option(fc.oneof(good, fc.jsonValue({ maxDepth: 1 })), { nil: undefined })
const payload = fc.record(
  {
    iss: claimValue(fc.constantFrom('portcullis', 'Portcullis', 'other')),
    aud: claimValue(fc.constantFrom<unknown>('orchestrator', ['orchestrator', 'x'], 'other', [])),
    sub: claimValue(fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,12}$/), latin1String(12))),
    exp: claimValue(fc.integer({ min: NOW_S - 100, max: NOW_S + 2000 })),
    nbf: claimValue(fc.integer({ min: NOW_S - 100, max: NOW_S + 100 })),
    iat: claimValue(fc.integer({ min: NOW_S - 2000, max: NOW_S + 100 })),
    roles: claimValue(fc.array(fc.oneof(fc.constantFrom('worker', 'admin'), latin1String(6)), { maxLength: 3 })),
  },
  { requiredKeys: [] },
)

t.test('jwt: tokens with any claims, signed with the key, never throw and pass only when every claim holds', async (t) => {
  await holds(
    t,
    'claims oracle',
    fc.asyncProperty(payload, async (p) => {
      const clean = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as JWTPayload
      const o = await outcome(jwt, request({ authorization: `Bearer ${await hs256(clean)}` }))
      if ((o.kind === 'identity') !== claimsOracle(clean)) throw new Error(`${o.kind} for ${JSON.stringify(clean)}`)
    }),
    params(150),
  )
})

t.test('jwt: a token signed with any other secret, alg none, or random text never authenticates', async (t) => {
  const good = { iss: 'portcullis', aud: 'orchestrator', sub: 'w', iat: NOW_S, exp: NOW_S + 60 }
  const forged = fc.oneof(
    fc.string({ minLength: 1, maxLength: 48 }).filter((s) => s !== JWT_SECRET).map((secret) => ({ secret })),
    fc.constantFrom({ none: true }),
    fc.tuple(latin1String(30), latin1String(30), latin1String(30)).map(([a, b, c]) => ({ raw: `${a}.${b}.${c}` })),
    fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), fc.uint8Array({ maxLength: 40 })).map(([h, p, s]) => ({
      raw: `${Buffer.from(JSON.stringify(h) ?? 'null').toString('base64url')}.${Buffer.from(JSON.stringify(p) ?? 'null').toString('base64url')}.${Buffer.from(s).toString('base64url')}`,
    })),
  )
  await holds(
    t,
    'forgeries',
    fc.asyncProperty(forged, async (f) => {
      let token: string
      if ('secret' in f) token = await hs256(good, f.secret)
      else if ('none' in f) token = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(good)).toString('base64url')}.`
      else token = f.raw
      const o = await outcome(jwt, request({ authorization: `Bearer ${token}` }))
      if (o.kind === 'identity') throw new Error(`accepted a forged token ${token}`)
    }),
    params(200),
  )
})

t.test('jwt: a mutated valid token authenticates only if it decodes to the very same header, payload and signature', async (t) => {
  const valid = await hs256({ iss: 'portcullis', aud: 'orchestrator', sub: 'worker-1', iat: NOW_S, exp: NOW_S + 600, roles: ['worker'] })
  const [h, p, s] = valid.split('.') as [string, string, string]
  await holds(
    t,
    'mutated jwt',
    fc.asyncProperty(mutation(valid, fc.oneof(trickyChar, fc.constantFrom(...'AQgwBb09_-=.'.split('')))).map(deliverable), async (m) => {
      const o = await outcome(jwt, request({ authorization: `Bearer ${m}` }))
      if (o.kind !== 'identity') return
      // The JWS signature segment's last base64url character has spare bits: jose (like atob) ignores them,
      // so such a twin decodes to the same bytes — the same token, not a forgery.
      const parts = stripOws(m).split('.')
      const same = parts.length === 3 && parts[0] === h && parts[1] === p && b64(parts[2]!).equals(b64(s))
      if (!same) throw new Error(`a mutated token authenticated: ${m}`)
    }),
    params(400),
  )
})

// ---------------------------------------------------------------- identity names (DESIGN §3.3)
t.test('identities from schemes are <scheme>:<subject>, never a bare subject (DESIGN §3.3)', async (t) => {
  const ts = String(NOW)
  const w = await outcome(worker, request({ 'x-worker-id': 'ops', 'x-worker-timestamp': ts, 'x-worker-signature': sign('ops', ts) }))
  t.equal(w.kind === 'identity' && w.identity.name, 'workers:ops', 'worker-v1 scheme "workers" → workers:<x-worker-id>')
  const j = await outcome(jwt, request({ authorization: `Bearer ${await hs256({ iss: 'portcullis', aud: 'orchestrator', sub: 'ops', iat: NOW_S, exp: NOW_S + 60 })}` }))
  t.equal(j.kind === 'identity' && j.identity.name, 'jobs:ops', 'jwt scheme "jobs" → jobs:<sub>')
})
