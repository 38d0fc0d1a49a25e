// Memory stores: the shared contract, plus the bounds: the replay cache (full → 503, never evicting a live entry)
// and the rate-limit table (full → new keys limited, never evicting a live window).

import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { MemoryRateLimitStore, MemoryReplayStore } from '../../../src/state/memory.js'
import { StoreUnavailableError } from '../../../src/state/types.js'
import { storeContract } from './store-contract.js'

storeContract('memory', async () => ({ replay: new MemoryReplayStore(10_000), limits: new MemoryRateLimitStore() }), { sizeLagMs: 0 })

t.test('memory replay cache: full refuses new entries and never evicts a live one', async (t) => {
  const replay = new MemoryReplayStore(3)
  for (const k of ['a', 'b', 'c']) t.equal(await replay.remember(k, 10_000), true)
  let refusal: unknown
  try {
    replay.remember('d', 10_000)
  } catch (err) {
    refusal = err
  }
  t.type(refusal, StoreUnavailableError, 'a fourth entry is refused')
  t.equal((refusal as StoreUnavailableError).reason, 'full')
  for (const k of ['a', 'b', 'c']) t.equal(await replay.remember(k, 10_000), false, `${k} is still a replay`)
  t.equal(await replay.size(), 3)
})

t.test('memory replay cache: a full cache takes new entries once old ones expire', async (t) => {
  const replay = new MemoryReplayStore(3)
  for (const k of ['a', 'b', 'c']) await replay.remember(k, 200)
  t.throws(() => replay.remember('d', 200), StoreUnavailableError)
  await sleep(250)
  t.equal(await replay.remember('d', 10_000), true, 'expired entries made room')
  t.equal(await replay.remember('a', 10_000), true, 'an expired key is a first use again')
  t.equal(await replay.remember('d', 10_000), false)
  t.equal(await replay.size(), 2)
})

t.test('memory replay cache: stale entries behind a live one are found (mixed ttls)', async (t) => {
  const replay = new MemoryReplayStore(3)
  await replay.remember('long', 10_000)
  await replay.remember('short-1', 150)
  await replay.remember('short-2', 150)
  await sleep(200)
  t.equal(await replay.remember('new', 10_000), true, 'stale entries deeper than the oldest live one are purged')
  t.equal(await replay.remember('long', 10_000), false, 'the live entry was kept')
  t.equal(await replay.size(), 2)
})

t.test('memory replay cache: an expired key is taken again even when the cache is full', async (t) => {
  const replay = new MemoryReplayStore(2)
  await replay.remember('long', 10_000)
  await replay.remember('short', 100)
  t.throws(() => replay.remember('other', 10_000), StoreUnavailableError, 'full (and a full purge just ran)')
  await sleep(150)
  t.equal(await replay.remember('short', 10_000), true, 'its own stale slot is reused, no room needed')
  t.equal(await replay.remember('short', 10_000), false)
  t.equal(await replay.remember('long', 10_000), false)
})

t.test('memory replay cache: a live entry is never evicted, even under a stream of new keys', async (t) => {
  const replay = new MemoryReplayStore(100)
  await replay.remember('keep', 10_000)
  let refused = 0
  for (let i = 0; i < 500; i++) {
    try {
      await replay.remember(`k${i}`, 10_000)
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      refused++
    }
  }
  t.equal(refused, 401, 'everything past the bound is refused')
  t.equal(await replay.remember('keep', 10_000), false, 'the first entry is still there')
})

t.test('memory rate limit: rotating addresses cannot reset a live window (auth-failure count kept)', async (t) => {
  const limits = new MemoryRateLimitStore(10)
  for (let i = 0; i < 20; i++) await limits.hit('af:attacker', 60_000)
  // the attacker fills the table from fresh addresses (IPv6 /64s are cheap)
  for (let i = 0; i < 50; i++) await limits.hit(`af:rotated-${i}`, 60_000)
  t.equal((await limits.peek('af:attacker'))?.count, 20, 'the live window of the client that filled the table survives')
})

t.test('memory rate limit: when full, a key without a live window is limited (fail closed)', async (t) => {
  const limits = new MemoryRateLimitStore(3)
  for (const k of ['a', 'b', 'c']) await limits.hit(k, 60_000)
  const hit = await limits.hit('d', 60_000)
  t.ok(hit.count > 1_000_000, 'a new key counts as over any limit')
  t.ok(hit.ttlMs > 0 && hit.ttlMs <= 60_000, 'until the oldest window ends')
  const peeked = await limits.peek('e')
  t.ok(peeked !== undefined && peeked.count > 1_000_000, 'peek of an unknown key is limited too (auth-failure throttle)')
  t.equal((await limits.hit('a', 60_000)).count, 2, 'keys with a live window keep counting')
})

t.test('memory rate limit: a full table takes new keys once windows expire', async (t) => {
  const limits = new MemoryRateLimitStore(3)
  await limits.hit('long', 60_000)
  await limits.hit('short-1', 100)
  await limits.hit('short-2', 100)
  await sleep(150)
  t.equal((await limits.hit('new', 60_000)).count, 1, 'expired windows made room')
  t.equal((await limits.hit('long', 60_000)).count, 2, 'the live window was kept')
})
