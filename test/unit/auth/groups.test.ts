// All-of groups (DESIGN §4.9): how members' verdicts combine — in order, the first missing or refused
// member names the refusal; the identity carries every member's replay mark and authorize check.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { combine, createGroupAuthenticator } from '../../../src/auth/groups.js'
import type { AuthOutcome, AuthRequest, Authenticator, Identity } from '../../../src/auth/types.js'

function member(name: string, outcome: AuthOutcome, kind: Authenticator['kind'] = 'bearer'): Authenticator & { calls: number } {
  const m = {
    name,
    kind,
    calls: 0,
    credentialHeaders: [],
    challenge: `${name} realm="x"`,
    missingMessage: `Missing ${name}`,
    present: () => outcome.kind !== 'absent',
    authenticate: () => {
      m.calls++
      return outcome
    },
  }
  return m
}
const id = (o: Partial<Identity> & { name: string }): AuthOutcome => ({ kind: 'identity', identity: { roles: [], method: o.name, fp: `key:${o.name}`, ...o } })
const req = { raw: {} as IncomingMessage, method: 'GET', path: '/', query: '', target: '/', tls: true, now: 0 } satisfies AuthRequest

t.test('all present and accepted: first member\'s name and fp, roles union, claims first-wins, method a+b', async (t) => {
  const g = createGroupAuthenticator([
    member('mtls', id({ name: 'node-1', roles: ['worker'], claims: { zone: 'eu-1' } }), 'mtls'),
    member('jobs', id({ name: 'jobs:j', roles: ['worker', 'gpu'], claims: { zone: 'us-1', gpu: true } })),
  ])
  const o = await g.authenticate(req)
  t.equal(o.kind, 'identity')
  if (o.kind !== 'identity') return
  t.match(o.identity, { name: 'node-1', fp: 'key:node-1', method: 'mtls+jobs', roles: ['worker', 'gpu'] })
  t.same({ ...o.identity.claims }, { zone: 'eu-1', gpu: true })
})

t.test('partly present: the first missing member, even when a later one would refuse', async (t) => {
  const later = member('jobs', { kind: 'deny', code: 'TOKEN_EXPIRED' })
  const g = createGroupAuthenticator([member('mtls', { kind: 'absent' }, 'mtls'), later])
  t.same(await g.authenticate(req), { kind: 'deny', code: 'MISSING_CREDENTIALS', message: 'Missing mtls' })
  t.equal(later.calls, 0, 'members after the first failure are not checked')
  const g2 = createGroupAuthenticator([member('mtls', id({ name: 'n' }), 'mtls'), member('jobs', { kind: 'deny', code: 'TOKEN_EXPIRED' })])
  t.same(await g2.authenticate(req), { kind: 'deny', code: 'TOKEN_EXPIRED' })
  const none = createGroupAuthenticator([member('mtls', { kind: 'absent' }, 'mtls'), member('jobs', { kind: 'absent' })])
  t.same(await none.authenticate(req), { kind: 'absent' }, 'all absent counts as absent')
  t.equal(none.present({} as IncomingMessage), false)
})

t.test('every replay mark is carried and every authorize must pass', async (t) => {
  const a = id({ name: 'signed:k', replay: { key: 'r1', ttlMs: 10 }, authorize: () => true, expiresAt: 500 })
  const b = id({ name: 'cluster:did', replay: { key: 'r2', ttlMs: 20 }, authorize: (r) => r.command === '/ok', expiresAt: 300 })
  const ids = [a, b].map((o) => (o as Extract<AuthOutcome, { kind: 'identity' }>).identity)
  const c = combine('signed+cluster', ids)
  t.same([c.replay, ...(c.moreReplays ?? [])], [{ key: 'r1', ttlMs: 10 }, { key: 'r2', ttlMs: 20 }])
  t.equal(c.authorize?.({ command: '/ok' }), true)
  t.equal(c.authorize?.({ command: '/other' }), false, 'one member refusing refuses the group')
  t.equal(c.expiresAt, 300, 'the earliest expiry')
})

t.test('a claim named __proto__ stays a claim', async (t) => {
  const claims = JSON.parse('{"__proto__": {"polluted": true}, "gpu": true}') as Record<string, unknown>
  const c = combine('a+b', [{ name: 'a', roles: [], method: 'a', fp: '', claims }])
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.equal(c.claims!.gpu, true)
})
