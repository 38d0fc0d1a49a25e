// The request path awaits only what is pending (src/maybe.ts), and "pending" means any thenable, as `await`
// reads it: a promise of another realm (node:vm, a worker, a sandboxed plugin) fails `instanceof Promise`
// and must still be waited for — its identity taken, its rejection reaching the pipeline (500), never
// unhandled. (Found in review of the change that dropped the per-step promises.)
import t from 'tap'
import { runInNewContext } from 'node:vm'
import type { IncomingMessage } from 'node:http'
import { authenticate } from '../../../src/auth/authenticate.js'
import type { AuthOutcome, Authenticator } from '../../../src/auth/types.js'
import { throttleThenCount, type GatewayState } from '../../../src/policy/limits.js'
import type { PeekThenHit } from '../../../src/state/types.js'
import { fakeRequest, loadGateway } from '../steps/fakes.js'

const gw = loadGateway()

/** A real, already resolved promise — of another realm, as node:vm, a worker or a sandboxed plugin make. */
function foreign<T>(value: T): Promise<T> {
  return runInNewContext('Promise.resolve(v)', { v: value }) as Promise<T>
}

/** A bearer request authenticated by one stand-in bearer authenticator answering with `answer()`. */
function authenticateWith(answer: () => Promise<AuthOutcome>) {
  const stand: Authenticator = {
    name: 'bearer',
    kind: 'bearer',
    credentialHeaders: ['authorization'],
    challenge: 'Bearer realm="portcullis"',
    present: (req: IncomingMessage) => req.headers.authorization !== undefined,
    authenticate: answer,
  }
  const req = fakeRequest({ url: '/admin', headers: [['authorization', 'Bearer ' + 'x'.repeat(40)]] })
  return authenticate(gw, { auth: [stand], loopbackAllow: false, missingMessage: 'Missing bearer token' }, req, {
    path: '/admin',
    query: '',
    tls: false,
    now: Date.now(),
    clientIp: '10.1.2.3',
    readBody: async () => Buffer.alloc(0),
  })
}

t.test('an authenticator answering with a promise of another realm: its identity is taken, as `await` took it', async (t) => {
  const identity = { name: 'ops', roles: ['admin'], method: 'bearer', fp: 'token:abcdef' }
  const r = await authenticateWith(() => foreign<AuthOutcome>({ kind: 'identity', identity }))
  t.match(r, { kind: 'identity', identity: { name: 'ops' } }, 'not MISSING_CREDENTIALS: the outcome was never looked at')
})

t.test('an authenticator whose promise of another realm rejects: the rejection reaches the pipeline (500), never unhandled', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => void unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => void process.off('unhandledRejection', onUnhandled))
  let outcome: string
  try {
    const r = await authenticateWith(() => runInNewContext('Promise.reject(new Error("key set fetch failed"))') as Promise<AuthOutcome>)
    outcome = 'resolved ' + r.kind
  } catch (err) {
    outcome = 'rejected ' + (err as Error).message
  }
  await new Promise((r) => setTimeout(r, 20))
  t.equal(outcome, 'rejected key set fetch failed', 'the failure is the decision\'s (decide → 500 INTERNAL)')
  t.equal(unhandled.length, 0, 'no unhandledRejection (the process default is to crash)')
})

t.test('a store whose peekThenHit answers with a promise of another realm: counted, not a TypeError (500 INTERNAL)', async (t) => {
  const route = gw.routes.find((r) => r.id === '/limited')!
  const state = {
    limits: {
      peekThenHit: (): Promise<PeekThenHit> => foreign<PeekThenHit>({ peeked: undefined, hit: { count: 1, ttlMs: 60_000 } }),
    },
    effectiveMax: (max: number) => max,
  } as unknown as GatewayState
  let r: unknown
  try {
    r = await throttleThenCount(state, gw, route, undefined, '10.1.2.3')
  } catch (err) {
    r = { threw: String(err) }
  }
  t.match(r, { ok: true, headers: { 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0' } })
})
