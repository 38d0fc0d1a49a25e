// worker-v1 (DESIGN §4.3): the seed-compatible scheme, its exact messages, and malformed input as 401s.
import t from 'tap'
import { createHmac } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createWorkerV1Authenticator, replayKey, workerV1Scheme } from '../../../src/auth/worker-v1.js'
import { signWorkerV1 } from '../../../src/client/worker-v1.js'
import type { AuthOutcome, AuthRequest } from '../../../src/auth/types.js'
import type { CompileContext, ConfigPath } from '../../../src/config/types.js'

const NOW = 1_700_000_000_000
const SECRET = 'a3f1c2d4e5b6a7980011223344556677889900aabbccddeeff00112233445566' // hex text, used as UTF-8
const auth = createWorkerV1Authenticator({ name: 'workers', secret: SECRET, windowMs: 300_000, roles: ['worker'] })

function request(headers: Record<string, string>, now = NOW): AuthRequest {
  const raw = { headers, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage
  return { raw, method: 'POST', path: '/v2/x', query: '', target: '/v2/x', tls: false, now }
}

/** What the seed clients send: lowercase hex HMAC-SHA256 of `<id>:<ts>` keyed with the secret's UTF-8 bytes. */
function seedSign(id: string, ts: string, secret = SECRET): string {
  return createHmac('sha256', secret).update(`${id}:${ts}`).digest('hex')
}

function headers(id: string, ts: string, sig = seedSign(id, ts)): Record<string, string> {
  return { 'x-worker-id': id, 'x-worker-timestamp': ts, 'x-worker-signature': sig }
}

function outcome(h: Record<string, string>, now = NOW): AuthOutcome {
  return auth.authenticate(request(h, now)) as AuthOutcome
}

function denial(h: Record<string, string>, now = NOW) {
  const out = outcome(h, now)
  return out.kind === 'deny' ? { code: out.code, message: out.message } : out.kind
}

const SKEW = { code: 'TIMESTAMP_SKEW', message: 'Timestamp expired or too far in future' }
const BAD_SIG = { code: 'INVALID_SIGNATURE', message: 'Invalid signature' }

t.test('a seed-signed request is accepted', async (t) => {
  const out = outcome(headers('worker-1', String(NOW)))
  t.equal(out.kind, 'identity')
  if (out.kind !== 'identity') return
  t.equal(out.identity.name, 'workers:worker-1')
  t.same(out.identity.roles, ['worker'])
  t.equal(out.identity.method, 'workers')
  t.match(out.identity.fp, /^key:[0-9a-f]{6}$/)
  t.same(out.identity.replay, { key: `w1:worker-1:${NOW}:${seedSign('worker-1', String(NOW))}`, ttlMs: 600_000 })
})

t.test('the client library signs what the seed clients sign', async (t) => {
  const h = signWorkerV1({ id: 'worker-1', secret: SECRET, now: NOW })
  t.same(h, headers('worker-1', String(NOW)))
  t.equal(outcome({ ...signWorkerV1({ id: 'w', secret: SECRET }) }, Date.now()).kind, 'identity')
})

t.test('missing headers, in order, with the exact messages', async (t) => {
  const full = headers('worker-1', String(NOW))
  t.equal(outcome({}).kind, 'absent')
  t.same(denial({ 'x-worker-timestamp': full['x-worker-timestamp']!, 'x-worker-signature': full['x-worker-signature']! }), { code: 'MISSING_CREDENTIALS', message: 'Missing worker ID' })
  t.same(denial({ 'x-worker-id': 'worker-1' }), { code: 'MISSING_CREDENTIALS', message: 'Missing timestamp' })
  t.same(denial({ 'x-worker-id': 'worker-1', 'x-worker-signature': 'ab' }), { code: 'MISSING_CREDENTIALS', message: 'Missing timestamp' })
  t.same(denial({ 'x-worker-id': 'worker-1', 'x-worker-timestamp': String(NOW) }), { code: 'MISSING_CREDENTIALS', message: 'Missing signature' })
  t.same(denial({ ...full, 'x-worker-id': '' }), { code: 'MISSING_CREDENTIALS', message: 'Missing worker ID' }, 'empty = missing')
  t.same(denial({ ...full, 'x-worker-signature': '' }), { code: 'MISSING_CREDENTIALS', message: 'Missing signature' })
  t.equal(auth.missingMessage, 'Missing worker ID')
})

t.test('window: 5 minutes either way, inclusive', async (t) => {
  const at = (offset: number) => denial(headers('w', String(NOW + offset)))
  t.equal(at(-300_000), 'identity')
  t.equal(at(300_000), 'identity')
  t.same(at(-300_001), SKEW)
  t.same(at(300_001), SKEW)
  t.same(denial(headers('w', String(NOW / 1000))), SKEW, 'seconds instead of milliseconds are simply out of window')
})

t.test('malformed timestamps are refused like an expired one', async (t) => {
  const bad = ['-1', `-${NOW}`, `${NOW}.0`, `${NOW}.5`, '1.7e12', `0x${NOW.toString(16)}`, ` ${NOW}`, `${NOW} `, `${NOW}\t`, `+${NOW}`, '12345678901234567', '0'.repeat(17), `${NOW}abc`, 'abc', '１７００', 'Infinity', 'NaN']
  for (const ts of bad) t.same(denial(headers('w', ts)), SKEW, JSON.stringify(ts))
  t.same(denial(headers('w', '0000' + String(NOW))), SKEW, '17 digits even with leading zeros')
  t.equal(denial(headers('w', '000' + String(NOW))), 'identity', '16 digits with leading zeros are digits')
  t.same(denial(headers('w', '9'.repeat(16))), SKEW, '16 nines: far future, no overflow')
})

t.test('signature must be exactly 64 lowercase hex characters', async (t) => {
  const ts = String(NOW)
  const good = seedSign('w', ts)
  const bad = [good.toUpperCase(), good.slice(0, 63), good + '0', good.slice(0, 62), good + '00', `${good.slice(0, 63)}g`, ` ${good.slice(1)}`, Buffer.from(good, 'hex').toString('base64'), 'sha256=' + good, good.slice(0, 32)]
  for (const sig of bad) t.same(denial(headers('w', ts, sig)), BAD_SIG, JSON.stringify(sig))
  t.same(denial(headers('w', ts, seedSign('w', ts, 'another-secret-0123456789abcdef012345'))), BAD_SIG, 'wrong secret')
  t.same(denial(headers('w', ts, seedSign('w2', ts))), BAD_SIG, 'signature of another worker')
  t.same(denial({ ...headers('w', ts), 'x-worker-id': 'w2' }), BAD_SIG, 'id swapped')
  t.same(denial({ ...headers('w', ts), 'x-worker-timestamp': String(NOW + 1) }), BAD_SIG, 'timestamp changed')
  t.same(denial(headers('w', ts, createHmac('sha256', Buffer.from(SECRET, 'hex')).update(`w:${ts}`).digest('hex'))), BAD_SIG, 'a hex secret is not decoded')
})

t.test('never throws, whatever the headers hold', async (t) => {
  const values = ['', ' ', ',', 'a, b', '\u00ff\u00fe', 'x'.repeat(10_000), '0', '-', ':', '%00']
  for (const id of values) for (const ts of [...values, String(NOW)]) for (const sig of [...values, seedSign(id, ts)]) {
    t.doesNotThrow(() => auth.authenticate(request({ 'x-worker-id': id, 'x-worker-timestamp': ts, 'x-worker-signature': sig })))
  }
  const arrays = { headers: { 'x-worker-id': ['a', 'b'] }, rawHeaders: [] } as unknown as IncomingMessage
  t.doesNotThrow(() => auth.authenticate({ ...request({}), raw: arrays }))
})

t.test('denials name the worker by fingerprint', async (t) => {
  const out = outcome(headers('worker-1', String(NOW), '0'.repeat(64)))
  t.match(out, { kind: 'deny', code: 'INVALID_SIGNATURE', claimed: 'worker-1', fp: /^key:[0-9a-f]{6}$/ })
  t.notMatch(JSON.stringify(out), /0{64}/)
})

t.test('interface: present, kind, credential headers, challenge', async (t) => {
  const r = (h: Record<string, string>) => ({ headers: h }) as unknown as IncomingMessage
  t.equal(auth.present(r({})), false)
  t.equal(auth.present(r({ 'x-worker-id': 'a' })), true)
  t.equal(auth.present(r({ 'x-worker-timestamp': '1' })), true)
  t.equal(auth.present(r({ 'x-worker-signature': '1' })), true)
  t.equal(auth.kind, 'worker-v1')
  t.same(auth.credentialHeaders, ['x-worker-id', 'x-worker-timestamp', 'x-worker-signature'])
  t.match(auth.challenge, /^WorkerV1 /)
  t.equal(auth.needsBody, undefined)
})

t.test('replay keys', async (t) => {
  const sig = 'a'.repeat(64)
  t.equal(replayKey('w', '1', sig), `w1:w:1:${sig}`)
  t.match(replayKey('w'.repeat(300), '1', sig), /^w1:#[0-9a-f]{64}$/)
  t.not(replayKey('w', '1', sig), replayKey('w', '2', sig))
})

t.test('factory resolves the secret through the context', async (t) => {
  const errors: string[] = []
  const ctx: CompileContext = {
    file: 'gateway.yaml',
    error: (p: ConfigPath, m: string) => void errors.push(`${p.join('.')}: ${m}`),
    warn: () => {},
    secret: (p: ConfigPath, ref: string) => (ref === '${env:S}' ? SECRET : (errors.push(`${p.join('.')}: unresolved`), undefined)),
    readFile: () => undefined,
  }
  const a = workerV1Scheme.compile('workers', { type: 'worker-v1', secret: '${env:S}', window: '1m', roles: ['worker'] }, ctx, ['schemes', 'workers'], { clientCa: false })
  t.ok(a)
  t.equal((a!.authenticate(request(headers('w', String(NOW - 60_000)))) as AuthOutcome).kind, 'identity')
  t.equal((a!.authenticate(request(headers('w', String(NOW - 60_001)))) as AuthOutcome).kind, 'deny')
  t.equal(workerV1Scheme.compile('workers', { type: 'worker-v1', secret: '${env:NOPE}', window: '5m' }, ctx, ['schemes', 'workers'], { clientCa: false }), undefined)
  t.same(errors, ['schemes.workers.secret: unresolved'])
})
