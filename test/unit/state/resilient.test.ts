// onStoreError against a private redis-server that is killed, restarted and hung mid-run: deny refuses,
// allow passes, local falls back with scaled limits, and the same State objects recover with no restart.

import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createState, storeErrorPolicy, StoreUnavailableError, type StoreErrorMode, type State, type StateOptions } from '../../../src/state/index.js'
import { PrivateRedis, freePort } from './private-redis.js'
import { redisSkip } from '../../redis-env.js'

const prefix = `portcullis-test:${randomBytes(6).toString('hex')}:`

function options(url: string, onStoreError: StoreErrorMode, timeoutMs = 300): StateOptions {
  return { store: 'redis', redis: { url, prefix }, timeoutMs, onStoreError, replicas: 3, maxEntries: 1000 }
}

/** Polls `check` every 50ms for at most `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    if (await check()) return true
    await sleep(50)
  }
  return check()
}

function failure(p: unknown): Promise<unknown> {
  return Promise.resolve(p).then(() => undefined, (err: unknown) => err)
}

t.test('killed, then restarted: each onStoreError mode, and recovery without a new State', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const changes: string[] = []
  const deny = await createState({ ...options(server.url, 'deny'), onModeChange: (mode) => changes.push(mode) })
  const allow = await createState(options(server.url, 'allow'))
  const local = await createState(options(server.url, 'local'))
  t.teardown(async () => {
    await server.stop()
    await Promise.all([deny.close(), allow.close(), local.close()])
  })

  for (const s of [deny, allow, local]) {
    t.equal(s.mode(), 'ok')
    t.equal(s.ready(), true)
  }
  t.equal(await deny.replay.remember('shared', 60_000), true)
  t.equal(await local.replay.remember('shared', 60_000), false, 'states share Redis while it is up')
  const beforeOutage = await local.limits.hit('route', 60_000)
  t.equal(local.effectiveMax(10, beforeOutage), 10, 'a hit counted in Redis keeps the full limit')
  t.equal(local.effectiveMax(10), 10)

  await server.stop()
  t.ok(await until(() => [deny, allow, local].every((s) => s.mode() === 'degraded'), 5000), 'every state sees the outage')

  t.test('deny: every check fails with StoreUnavailableError, fast, and /readyz goes unready', async (t) => {
    t.equal(deny.ready(), false)
    const started = performance.now()
    const err = await failure(deny.replay.remember('during', 60_000))
    t.type(err, StoreUnavailableError)
    t.equal((err as StoreUnavailableError).reason, 'unreachable')
    t.type(await failure(deny.limits.hit('route', 60_000)), StoreUnavailableError)
    t.type(await failure(deny.limits.peek('route')), StoreUnavailableError)
    t.type(await failure(Promise.resolve().then(() => deny.limits.peekThenHit('af', 5, 'route', 60_000))), StoreUnavailableError)
    t.ok(performance.now() - started < 100, 'a known-down Redis is not waited on')
    t.type(await failure(deny.replay.size()), StoreUnavailableError)
  })

  t.test('allow: checks pass unchecked, /readyz stays ready', async (t) => {
    t.equal(allow.ready(), true)
    t.equal(await allow.replay.remember('during', 60_000), true)
    t.equal(await allow.replay.remember('during', 60_000), true, 'no replay cache while Redis is down')
    t.same(await allow.limits.hit('route', 60_000), { count: 0, ttlMs: 60_000 })
    t.equal(await allow.limits.peek('route'), undefined)
    t.same(await allow.limits.peekThenHit('af', 5, 'route', 60_000), { peeked: undefined, hit: { count: 0, ttlMs: 60_000 } })
    t.equal(allow.effectiveMax(10), 10)
  })

  t.test('local: process memory answers, limits scaled to ceil(max / replicas)', async (t) => {
    t.equal(local.ready(), true)
    t.equal(await local.replay.remember('during', 60_000), true)
    t.equal(await local.replay.remember('during', 60_000), false, 'replays caught locally')
    const counts: number[] = []
    let last
    for (let i = 0; i < 3; i++) {
      last = await local.limits.hit('route', 60_000)
      counts.push(last.count)
    }
    t.same(counts, [1, 2, 3], 'counted locally')
    t.equal(local.effectiveMax(10, last), 4, 'ceil(10 / 3)')
    t.equal(local.effectiveMax(10), 4)
    t.equal(local.effectiveMax(10, beforeOutage), 10, 'the limit follows the store that counted the hit')
    t.equal((await local.limits.peek('route'))?.count, 3)
    // peekThenHit compares the peeked count with this process's share of its max: ceil(5 / 3) = 2
    await local.limits.hit('af-local', 60_000)
    const under = await local.limits.peekThenHit('af-local', 5, 'route', 60_000)
    t.equal(under.hit?.count, 4, 'one failure, under a share of 2: counted')
    t.equal(local.effectiveMax(10, under.hit), 4, 'a local hit')
    await local.limits.hit('af-local', 60_000)
    const at = await local.limits.peekThenHit('af-local', 5, 'route', 60_000)
    t.equal(at.peeked?.count, 2)
    t.equal(at.hit, undefined, 'two failures reach the share of 2: not counted')
    t.equal(local.effectiveMax(5, at.peeked), 2, 'the peeked hit is judged as local too')
    t.equal((await local.limits.peek('route'))?.count, 4)
    t.equal(await local.replay.size(), 1, 'the gauge reads the local cache')
  })

  await t.test('restart on the same port', async (t) => {
    await server.start()
    t.ok(await until(() => [deny, allow, local].every((s) => s.mode() === 'ok'), 10_000), 'every state is back on Redis by itself')
    t.equal(deny.ready(), true)
    t.equal(await deny.replay.remember('after', 60_000), true)
    t.equal(await allow.replay.remember('after', 60_000), false, 'shared again')
    t.equal(await local.replay.remember('during', 60_000), false, 'accepted locally during the outage: still a replay')
    const hit = await local.limits.hit('route', 60_000)
    t.equal(hit.count, 1, 'counted in Redis again (a fresh server)')
    t.equal(local.effectiveMax(10, hit), 10)
    t.equal(local.effectiveMax(10), 10)
    t.same(changes, ['degraded', 'ok'], 'one report per change of mode')
  })
})

t.test('hung (SIGSTOP): a timeout marks the store down, a background probe brings it back', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const deny = await createState(options(server.url, 'deny'))
  const local = await createState(options(server.url, 'local'))
  t.teardown(async () => {
    await server.stop()
    await Promise.all([deny.close(), local.close()])
  })
  t.equal(await deny.replay.remember('k', 60_000), true)

  server.pause()
  let started = performance.now()
  const err = await failure(deny.replay.remember('hung', 60_000))
  let took = performance.now() - started
  t.type(err, StoreUnavailableError)
  t.ok(took >= 250 && took < 1000, `the first call waits the timeout (${Math.round(took)}ms)`)
  t.equal(deny.mode(), 'degraded')
  t.equal(deny.ready(), false)
  started = performance.now()
  t.type(await failure(deny.limits.hit('r', 60_000)), StoreUnavailableError)
  took = performance.now() - started
  t.ok(took < 100, `later calls fail at once (${Math.round(took)}ms)`)

  t.equal(await local.replay.remember('hung', 60_000), true, 'local: first call times out, then memory answers')
  t.equal(local.mode(), 'degraded')
  t.equal(local.effectiveMax(7), 3, 'ceil(7 / 3)')

  server.resume()
  // no requests while waiting: readiness must come back without traffic
  t.ok(await until(() => deny.ready() && local.mode() === 'ok', 5000), 'recovered with no request to probe it')
  t.equal(await deny.replay.remember('k', 60_000), false)
})

t.test('started while Redis is down: degraded, then ok once it comes up', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  const started = performance.now()
  const deny = await createState(options(server.url, 'deny'))
  t.teardown(async () => {
    await server.stop()
    await deny.close()
  })
  t.ok(performance.now() - started < 1000, 'createState waits only briefly')
  t.equal(deny.mode(), 'degraded')
  t.equal(deny.ready(), false)
  t.type(await failure(deny.replay.remember('x', 1000)), StoreUnavailableError)
  await server.start()
  t.ok(await until(() => deny.ready(), 5000), 'ready once Redis is up')
  t.equal(await deny.replay.remember('x', 1000), true)
})

t.test('reconfigure: policy changes apply at once, store changes are reported', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const state: State = await createState(options(server.url, 'deny'))
  t.teardown(async () => {
    await server.stop()
    await state.close()
  })
  t.same(state.reconfigure(options(server.url, 'deny')), [])
  await server.stop()
  t.ok(await until(() => state.mode() === 'degraded', 5000))
  t.type(await failure(state.replay.remember('p', 1000)), StoreUnavailableError)
  t.same(state.reconfigure(options(server.url, 'allow')), [], 'onStoreError is live')
  t.equal(await state.replay.remember('p', 1000), true)
  t.equal(state.ready(), true)
  t.same(state.reconfigure({ ...options('redis://127.0.0.1:1', 'allow'), maxEntries: 5 }), ['state.redis.url', 'state.maxEntries'])
  t.same(state.reconfigure({ ...options(server.url, 'allow'), store: 'memory' }), ['state.store'])
})

t.test('per purpose: the default { replay: deny, rateLimit: local }, and /readyz only for a deny purpose', async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const byDefault = await createState({ ...options(server.url, 'deny'), onStoreError: storeErrorPolicy(undefined) })
  const limitsDeny = await createState({ ...options(server.url, 'deny'), onStoreError: { replay: 'local', rateLimit: 'deny' } })
  const noDeny = await createState({ ...options(server.url, 'deny'), onStoreError: { replay: 'allow', rateLimit: 'local' } })
  t.teardown(async () => {
    await server.stop()
    await Promise.all([byDefault.close(), limitsDeny.close(), noDeny.close()])
  })
  t.same(storeErrorPolicy(undefined), { replay: 'deny', rateLimit: 'local' })
  t.same(storeErrorPolicy('allow'), { replay: 'allow', rateLimit: 'allow' }, 'one word for both')
  t.same(storeErrorPolicy({ replay: 'local' }), { replay: 'local', rateLimit: 'local' })
  await server.stop()
  t.ok(await until(() => [byDefault, limitsDeny, noDeny].every((s) => s.mode() === 'degraded'), 5000))

  t.type(await failure(byDefault.replay.remember('r', 60_000)), StoreUnavailableError, 'default: a replay check is refused')
  t.equal((await byDefault.limits.hit('route', 60_000)).count, 1, 'default: rate limits counted locally')
  t.equal(byDefault.effectiveMax(10), 4, 'scaled: ceil(10 / 3)')
  t.equal(byDefault.ready(), false, 'default: unready, replay is a deny purpose')

  t.equal(await limitsDeny.replay.remember('r', 60_000), true)
  t.equal(await limitsDeny.replay.remember('r', 60_000), false, 'replay answered locally')
  t.type(await failure(limitsDeny.limits.hit('route', 60_000)), StoreUnavailableError, 'rate limit refused')
  t.type(await failure(limitsDeny.limits.peek('af')), StoreUnavailableError, 'auth-failure throttle is a rate limit: refused')
  t.equal(limitsDeny.effectiveMax(10), 10, 'no local scaling for a denied purpose')
  t.equal(limitsDeny.ready(), false)

  t.equal(await noDeny.replay.remember('r', 60_000), true)
  t.equal(await noDeny.replay.remember('r', 60_000), true, 'allow: unchecked')
  t.equal((await noDeny.limits.hit('route', 60_000)).count, 1)
  t.equal(noDeny.ready(), true, 'no deny purpose: /readyz stays ready')

  t.same(noDeny.reconfigure({ ...options(server.url, 'deny'), onStoreError: { replay: 'deny', rateLimit: 'local' } }), [])
  t.equal(noDeny.ready(), false, 'a reload that makes replay deny makes it unready at once')
})

t.test('memory state: always ok and ready, limits unscaled', async (t) => {
  const state = await createState({ store: 'memory', timeoutMs: 1000, onStoreError: 'local', replicas: 3, maxEntries: 2 })
  t.teardown(() => state.close())
  t.equal(state.mode(), 'ok')
  t.equal(state.ready(), true)
  t.equal(state.effectiveMax(10), 10)
  t.equal(state.replay.kind, 'memory')
  await state.replay.remember('a', 10_000)
  await state.replay.remember('b', 10_000)
  t.equal(((await failure(Promise.resolve().then(() => state.replay.remember('c', 10_000)))) as StoreUnavailableError).reason, 'full', 'the memory store throws at once')
})

t.test('createState: redis without a url is refused', async (t) => {
  await t.rejects(createState({ store: 'redis', timeoutMs: 100, onStoreError: 'deny', replicas: 1, maxEntries: 1 }))
})
