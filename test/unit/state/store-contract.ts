// The one behaviour suite every ReplayStore / RateLimitStore pair must pass (memory and Redis alike).
// Run from memory.test.ts and redis.test.ts; keys are unique per call so runs never see each other's state.

import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { RateLimitStore, ReplayStore } from '../../../src/state/types.js'

export interface StorePair {
  replay: ReplayStore
  limits: RateLimitStore
}

export interface ContractOptions {
  /** How long after expiry size() may still count an entry (Redis counts per expiry second). */
  sizeLagMs: number
  /** Skip the whole suite with this reason (a store whose backing service is absent). */
  skip?: string | false
}

export function storeContract(name: string, open: () => Promise<StorePair>, opts: ContractOptions): void {
  t.test(`${name}: store contract`, { skip: opts.skip ?? false }, async (t) => {
    const { replay, limits } = await open()
    t.teardown(async () => {
      await replay.close()
      await limits.close()
    })
    const run = randomBytes(4).toString('hex')
    let n = 0
    const key = (label: string) => `${label}:${run}:${++n}`

    // first, while every entry the suite has made is long-lived, so `before` cannot shrink under it
    t.test('replay: size counts live entries and drops expired ones', async (t) => {
      const before = await replay.size()
      for (let i = 0; i < 5; i++) await replay.remember(key('size'), 300)
      const during = await replay.size()
      t.ok(during >= before + 5, `size grew by at least 5 (${before} → ${during})`)
      await sleep(300 + opts.sizeLagMs + 100)
      t.ok((await replay.size()) <= before, 'expired entries are no longer counted')
    })

    t.test('replay: first use, then replay, keys independent', async (t) => {
      const k = key('replay')
      t.equal(await replay.remember(k, 10_000), true, 'first use is accepted')
      t.equal(await replay.remember(k, 10_000), false, 'second use is a replay')
      t.equal(await replay.remember(k, 10_000), false, 'and stays one')
      t.equal(await replay.remember(key('other'), 10_000), true, 'another key is its own first use')
    })

    t.test('replay: held until its ttl, forgotten after it', async (t) => {
      const k = key('ttl')
      t.equal(await replay.remember(k, 400), true)
      await sleep(200)
      t.equal(await replay.remember(k, 400), false, 'still a replay before the ttl ends')
      await sleep(350)
      t.equal(await replay.remember(k, 400), true, 'a first use again after the ttl')
    })

    t.test('replay: concurrent uses of one key, exactly one first use', async (t) => {
      const k = key('race')
      const answers = await Promise.all(Array.from({ length: 50 }, () => replay.remember(k, 10_000)))
      t.equal(answers.filter((a) => a).length, 1)
    })

    t.test('rate limit: counts within a window, peek does not count', async (t) => {
      const k = key('rl')
      t.equal(await limits.peek(k), undefined, 'unknown key peeks as undefined')
      const first = await limits.hit(k, 10_000)
      t.equal(first.count, 1)
      t.ok(first.ttlMs > 9_000 && first.ttlMs <= 10_000, `ttl near the window (${first.ttlMs})`)
      t.equal((await limits.hit(k, 10_000)).count, 2)
      const third = await limits.hit(k, 10_000)
      t.equal(third.count, 3)
      t.ok(third.ttlMs <= first.ttlMs, 'ttl does not grow')
      const peeked = await limits.peek(k)
      t.equal(peeked?.count, 3, 'peek reads the count')
      t.ok((peeked?.ttlMs ?? 0) > 0 && (peeked?.ttlMs ?? 0) <= 10_000)
      t.equal((await limits.hit(k, 10_000)).count, 4, 'peek did not count')
      t.equal((await limits.hit(key('rl-other'), 10_000)).count, 1, 'keys count separately')
    })

    t.test('rate limit: fixed window from the first request, then a new one', async (t) => {
      const k = key('window')
      await limits.hit(k, 400)
      await sleep(250)
      const later = await limits.hit(k, 400)
      t.equal(later.count, 2, 'same window')
      t.ok(later.ttlMs <= 200, `window did not slide (ttl ${later.ttlMs})`)
      await sleep(250)
      const fresh = await limits.hit(k, 400)
      t.equal(fresh.count, 1, 'the window that started at the first request has ended')
      t.ok(fresh.ttlMs > 300, `a new window (ttl ${fresh.ttlMs})`)
      t.equal((await limits.peek(k))?.count, 1)
      await sleep(450)
      t.equal(await limits.peek(k), undefined, 'an ended window peeks as undefined')
    })

    t.test('rate limit: peekThenHit counts only while the peeked key is under its max', async (t) => {
      const peekKey = key('af')
      const k = key('rl')
      const first = await limits.peekThenHit(peekKey, 2, k, 10_000)
      t.equal(first.peeked, undefined, 'an absent peeked key')
      t.equal(first.hit?.count, 1, 'counted')
      t.ok((first.hit?.ttlMs ?? 0) > 9_000 && (first.hit?.ttlMs ?? 0) <= 10_000, 'a window from this first request')
      await limits.hit(peekKey, 10_000)
      const under = await limits.peekThenHit(peekKey, 2, k, 10_000)
      t.equal(under.peeked?.count, 1)
      t.ok((under.peeked?.ttlMs ?? 0) > 0 && (under.peeked?.ttlMs ?? 0) <= 10_000, 'the peeked ttl')
      t.equal(under.hit?.count, 2, 'under its max: counted')
      await limits.hit(peekKey, 10_000)
      const at = await limits.peekThenHit(peekKey, 2, k, 10_000)
      t.equal(at.peeked?.count, 2)
      t.equal(at.hit, undefined, 'at its max: not counted')
      t.equal((await limits.peek(k))?.count, 2, 'the count is unchanged')
      t.equal((await limits.peek(peekKey))?.count, 2, 'the peek counted nothing')
      const burst = await Promise.all(Array.from({ length: 50 }, () => limits.peekThenHit(key('af-none'), 1, k, 10_000)))
      t.same(burst.map((b) => b.hit!.count).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 3), 'concurrent counts are exact')
    })

    t.test('rate limit: 200 concurrent hits on one key count exactly', async (t) => {
      const k = key('burst')
      const hits = await Promise.all(Array.from({ length: 200 }, () => limits.hit(k, 10_000)))
      const counts = hits.map((h) => h.count).sort((a, b) => a - b)
      t.same(counts, Array.from({ length: 200 }, (_, i) => i + 1), 'every count from 1 to 200 exactly once')
      t.equal((await limits.peek(k))?.count, 200)
    })
  })
}
