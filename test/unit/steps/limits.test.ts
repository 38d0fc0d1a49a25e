// Step 5 (DESIGN §3): a signed credential is accepted once (REPLAYED the second time), the route's rate
// limit answers 429 with its headers, and a concurrency slot is held until the exchange's lifetime closes.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { checkConcurrency, checkReplayAndLimit } from '../../../src/steps/limits.js'
import { checkCredentials } from '../../../src/steps/authenticate.js'
import { oneByOne } from '../../../src/steps/admit.js'
import { isPending } from '../../../src/maybe.js'
import { MemoryReplayStore } from '../../../src/state/memory.js'
import { StoreUnavailableError } from '../../../src/state/types.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import { signWorkerV1 } from '../../../src/client/worker-v1.js'
import type { Lifetime } from '../../../src/policy/concurrency.js'
import { JOIN_PATH, OPS_TOKEN, READER_TOKEN, WORKER_SECRET, exchangeFor, fakeRequest, testRuntime, type FakeRequestOptions, type TestRuntime } from './fakes.js'

async function authenticated(rt: TestRuntime, o: FakeRequestOptions) {
  const { x } = exchangeFor(rt, fakeRequest(o))
  if (checkPath(x, x.req!) || findRoute(x)) throw new Error(`no route for ${o.url}`)
  const d = await checkCredentials(x, x.req!)
  if (d) throw new Error(`not authenticated: ${d.code}`)
  return x
}

/** A response stand-in: 'close' once, `destroyed` afterwards. */
function lifetime(): Lifetime & { close(): void } {
  const e = new EventEmitter() as EventEmitter & { destroyed: boolean; close(): void }
  e.destroyed = false
  e.close = () => {
    e.destroyed = true
    e.emit('close')
  }
  return e
}

const bearer = (token: string): Array<[string, string]> => [['authorization', `Bearer ${token}`]]

t.test('the second use of a signed request is REPLAYED; its verified identity is kept for the audit line', async (t) => {
  const rt = await testRuntime()
  const headers = Object.entries(signWorkerV1({ id: 'w-3', secret: WORKER_SECRET }))
  const first = await authenticated(rt, { method: 'POST', url: '/work', headers })
  t.ok(first.identity?.replay, 'worker-v1 yields a replay key')
  t.equal(await checkReplayAndLimit(first), undefined)

  const again = await authenticated(rt, { method: 'POST', url: '/work', headers, remoteAddress: '10.7.7.7' })
  t.same(await checkReplayAndLimit(again), { code: 'REPLAYED' }, 'from any address')
  t.equal(again.identity?.name, 'workers:w-3')

  const fresh = await authenticated(rt, { method: 'POST', url: '/work', headers: Object.entries(signWorkerV1({ id: 'w-3', secret: WORKER_SECRET, now: Date.now() + 1000 })) })
  t.equal(await checkReplayAndLimit(fresh), undefined, 'a new signature is not a replay')
})

t.test('RATE_LIMITED past the route limit, with Retry-After and x-ratelimit-*; headers kept on an allowed request', async (t) => {
  const rt = await testRuntime()
  const first = await authenticated(rt, { url: '/limited', headers: bearer(OPS_TOKEN) })
  t.equal(await checkReplayAndLimit(first), undefined)
  t.match(first.limitHeaders, { 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': /^\d+$/ })
  t.notOk(first.limitHeaders && 'retry-after' in first.limitHeaders, 'no Retry-After while allowed')

  const second = await authenticated(rt, { url: '/limited', headers: bearer(OPS_TOKEN), remoteAddress: '10.3.3.3' })
  const d = await checkReplayAndLimit(second)
  t.match(d, { code: 'RATE_LIMITED', limitedBy: 'identity', headers: { 'retry-after': /^[1-9]\d*$/, 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': /^\d+$/ } })
  t.equal(second.limitHeaders, undefined, 'a refused request carries its headers on the denial')

  const other = await authenticated(rt, { url: '/limited', headers: bearer(READER_TOKEN) })
  t.equal(await checkReplayAndLimit(other), undefined, 'by identity: another identity has its own window')

  const unlimited = await authenticated(rt, { url: '/admin', headers: bearer(OPS_TOKEN) })
  t.equal(await checkReplayAndLimit(unlimited), undefined)
  t.equal(unlimited.limitHeaders, undefined, 'a route without a limit sends no x-ratelimit-*')
})

t.test('concurrency: one slot per identity, released when the lifetime closes', async (t) => {
  const rt = await testRuntime()
  const a = lifetime()
  const first = await authenticated(rt, { url: '/slots', headers: bearer(OPS_TOKEN) })
  t.equal(checkConcurrency(first, a), undefined)

  const second = await authenticated(rt, { url: '/slots', headers: bearer(OPS_TOKEN) })
  t.same(checkConcurrency(second, lifetime()), {
    code: 'RATE_LIMITED',
    limitedBy: 'concurrency',
    headers: { 'retry-after': '1', 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' },
  })
  const reader = await authenticated(rt, { url: '/slots', headers: bearer(READER_TOKEN) })
  const r = lifetime()
  t.equal(checkConcurrency(reader, r), undefined, 'another identity has its own slot')

  a.close()
  const third = await authenticated(rt, { url: '/slots', headers: bearer(OPS_TOKEN) })
  const c = lifetime()
  t.equal(checkConcurrency(third, c), undefined, 'free again after the first response closed')
  c.close()
  r.close()

  const gone = lifetime()
  gone.close()
  const late = await authenticated(rt, { url: '/slots', headers: bearer(OPS_TOKEN) })
  t.equal(checkConcurrency(late, gone), undefined)
  const after = await authenticated(rt, { url: '/slots', headers: bearer(OPS_TOKEN) })
  const d = lifetime()
  t.equal(checkConcurrency(after, d), undefined, 'a lifetime already closed gives its slot back at once')
  d.close()
})

t.test('concurrency does not apply to a route without it, nor to the join route', async (t) => {
  const rt = await testRuntime()
  const x = await authenticated(rt, { url: '/admin', headers: bearer(OPS_TOKEN) })
  for (let i = 0; i < 5; i++) t.equal(checkConcurrency(x, lifetime()), undefined)
  const { x: join } = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  checkPath(join, join.req!)
  findRoute(join)
  t.equal(checkConcurrency(join, lifetime()), undefined)
})

t.test('memory mode: steps 3–5 of a signed request that needs no body make no promise (docs/performance.md)', async (t) => {
  const rt = await testRuntime()
  const headers = Object.entries(signWorkerV1({ id: 'w-9', secret: WORKER_SECRET }))
  const run = (remoteAddress?: string) => {
    const { x } = exchangeFor(rt, fakeRequest({ method: 'POST', url: '/work', headers, ...(remoteAddress ? { remoteAddress } : {}) }))
    if (checkPath(x, x.req!) || findRoute(x)) throw new Error('no route for /work')
    return oneByOne(x, () => checkCredentials(x, x.req!))
  }
  const first = run()
  t.notOk(isPending(first), 'answered at once')
  t.equal(first, undefined, 'allowed')
  const again = run('10.9.9.9')
  t.notOk(isPending(again), 'the replay is answered at once too')
  t.same(again, { code: 'REPLAYED' })
})

t.test('a full replay cache: its error is the answer, and every store call is still made (the request counted)', async (t) => {
  const rt = await testRuntime()
  const replay = new MemoryReplayStore(1)
  replay.remember('someone-else', 60_000) // the one slot, unexpired
  rt.state = Object.create(rt.state, { replay: { value: replay } }) as typeof rt.state
  const headers = Object.entries(signWorkerV1({ id: 'w-full', secret: WORKER_SECRET }))
  const x = await authenticated(rt, { method: 'POST', url: '/work', headers })
  const refused = await Promise.resolve()
    .then(() => checkReplayAndLimit(x))
    .then(() => undefined, (err: unknown) => err)
  t.type(refused, StoreUnavailableError, 'the store error reaches the pipeline (503 STATE_UNAVAILABLE there)')
  const counted = rt.state.limits.peek('rl:' + x.route!.id + ':id:workers:w-full') as { count: number } | undefined
  t.equal(counted?.count, 1, 'the rate limit counted the request, as when both calls went out together')
})
