// The memory replay cache stays compact (issue 12): a bound on the bytes it holds per entry, which the
// lru-cache version (a full key string and an LRU node per entry, ~280 B) broke; and the table that makes
// it compact keeps every entry through its growth and its rebuilds.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { MemoryReplayStore } from '../../../src/state/memory.js'
import { StoreUnavailableError } from '../../../src/state/types.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function held(): number {
  gc()
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

const sig = 'f'.repeat(56)
const workerKey = (i: number) => `w1:w${i % 1000}:${1764579600000 + i}:${sig}${i.toString(16).padStart(8, '0')}`

t.test('replay cache memory: 200k worker-v1 keys held in at most 120 bytes each', async (t) => {
  const n = 200_000
  const before = held()
  const store = new MemoryReplayStore(n)
  for (let i = 0; i < n; i++) await store.remember(workerKey(i), 300_000)
  const perEntry = (held() - before) / n
  t.ok(perEntry <= 120, `${perEntry.toFixed(1)} bytes per entry (≤ 120; 1 M entries ≤ 120 MB)`)
  t.equal(await store.size(), n)
  t.equal(await store.remember(workerKey(0), 300_000), false, 'the first entry is still a replay')
  t.equal(await store.remember(workerKey(n - 1), 300_000), false, 'and the last')
  await store.close()
})

t.test('replay cache: every entry survives the table growing from its first allocation', async (t) => {
  const store = new MemoryReplayStore(50_000)
  let firsts = 0
  for (let i = 0; i < 20_000; i++) if (await store.remember(`k${i}`, 60_000)) firsts++
  t.equal(firsts, 20_000, 'each is a first use')
  let replays = 0
  for (let i = 0; i < 20_000; i++) if (!(await store.remember(`k${i}`, 60_000))) replays++
  t.equal(replays, 20_000, 'all 20 000 are replays after several doublings')
  t.equal(store.seen('k123'), true)
  t.equal(store.seen('never'), false)
})

t.test('replay cache: a rebuild to make room keeps the live entries and drops only the expired', async (t) => {
  const store = new MemoryReplayStore(2000)
  for (let i = 0; i < 1000; i++) await store.remember(`live${i}`, 60_000)
  for (let i = 0; i < 1000; i++) await store.remember(`short${i}`, 50)
  t.throws(() => store.remember('one-more', 60_000), StoreUnavailableError, 'full of unexpired entries')
  await sleep(100)
  let taken = 0
  for (let i = 0; i < 1000; i++) if (await store.remember(`new${i}`, 60_000)) taken++
  t.equal(taken, 1000, 'the room of the 1000 expired entries is taken by new ones')
  let kept = 0
  for (let i = 0; i < 1000; i++) if (!(await store.remember(`live${i}`, 60_000))) kept++
  t.equal(kept, 1000, 'every live entry is still a replay')
  t.equal(await store.size(), 2000)
  t.throws(() => store.remember('one-more', 60_000), StoreUnavailableError, 'full again, and nothing live was evicted')
})

t.test('replay cache: an expired key is a first use again, in place', async (t) => {
  const store = new MemoryReplayStore(10)
  t.equal(await store.remember('k', 30), true)
  t.equal(await store.remember('k', 30), false)
  await sleep(60)
  t.equal(store.seen('k'), false)
  t.equal(await store.remember('k', 10_000), true)
  t.equal(await store.remember('k', 10_000), false)
  t.equal(await store.size(), 1)
})
