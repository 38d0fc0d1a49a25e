// Redis stores against REDIS_URL (default redis://127.0.0.1:6379): the shared contract, replicas sharing state,
// key layout under the prefix, call timeouts and ACL URLs. Every key written is under a per-run prefix, deleted at the end.

import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { RedisLink, RedisRateLimitStore, RedisReplayStore } from '../../../src/state/redis.js'
import { StoreUnavailableError } from '../../../src/state/types.js'
import { PrivateRedis, freePort } from './private-redis.js'
import { storeContract } from './store-contract.js'
import { REDIS_URL, redisSkip } from '../../redis-env.js'

const url = REDIS_URL
const prefix = `portcullis-test:${randomBytes(6).toString('hex')}:`

async function openLink(opts: { url?: string; prefix?: string; timeoutMs?: number } = {}): Promise<RedisLink> {
  const link = new RedisLink({ url: opts.url ?? url, prefix: opts.prefix ?? prefix, timeoutMs: opts.timeoutMs ?? 2000 })
  if (!(await link.waitReady(3000))) throw new Error(`redis at ${opts.url ?? url} not reachable`)
  return link
}

const admin = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })

t.teardown(async () => {
  if (redisSkip) return admin.disconnect()
  // SCAN, bounded, only over this run's prefix: the database may be shared
  let cursor = '0'
  for (let round = 0; round < 10_000; round++) {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await admin.del(...keys)
    cursor = next
    if (cursor === '0') break
  }
  admin.disconnect()
})

storeContract(
  'redis',
  async () => {
    const link = await openLink()
    return { replay: new RedisReplayStore(link), limits: new RedisRateLimitStore(link) }
  },
  { sizeLagMs: 1000, skip: redisSkip },
)

t.test('redis: two replicas share the replay cache and the counters exactly', { skip: redisSkip }, async (t) => {
  const a = await openLink()
  const b = await openLink()
  const replayA = new RedisReplayStore(a)
  const replayB = new RedisReplayStore(b)
  const limitsA = new RedisRateLimitStore(a)
  const limitsB = new RedisRateLimitStore(b)
  t.teardown(async () => {
    await Promise.all([replayA.close(), replayB.close(), limitsA.close(), limitsB.close()])
  })

  t.equal(await replayA.remember('shared', 10_000), true)
  t.equal(await replayB.remember('shared', 10_000), false, 'accepted by one replica is a replay at the other')

  const both = await Promise.all(
    Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? limitsA : limitsB).hit('burst-two', 10_000)),
  )
  t.same(
    both.map((h) => h.count).sort((x, y) => x - y),
    Array.from({ length: 200 }, (_, i) => i + 1),
    '200 concurrent hits across two connections count 1..200 exactly once',
  )
  t.equal((await limitsA.peek('burst-two'))?.count, 200)

  const firsts = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? replayA : replayB).remember('race-two', 10_000)))
  t.equal(firsts.filter((f) => f).length, 1, 'one first use across replicas')
})

t.test('redis: keys live under the prefix with the ttl asked for', { skip: redisSkip }, async (t) => {
  await admin.connect().catch(() => {})
  const link = await openLink()
  const replay = new RedisReplayStore(link)
  const limits = new RedisRateLimitStore(link)
  t.teardown(async () => {
    await replay.close()
    await limits.close()
  })
  await replay.remember('layout', 5000)
  t.equal(await admin.get(`${prefix}replay:layout`), '1')
  const replayTtl = await admin.pttl(`${prefix}replay:layout`)
  t.ok(replayTtl > 4000 && replayTtl <= 5000, `replay key ttl ${replayTtl}`)
  await limits.hit('layout', 7000)
  const rlTtl = await admin.pttl(`${prefix}rl:layout`)
  t.ok(rlTtl > 6000 && rlTtl <= 7000, `counter ttl ${rlTtl}`)
  t.ok((await admin.pttl(`${prefix}replay-horizon`)) > 0, 'the size horizon expires too')
  const size = await replay.size()
  t.ok(size >= 1, `size counts it (${size})`)
})

t.test('redis: size is a sum of a few counters, not a scan', { skip: redisSkip }, async (t) => {
  const ownPrefix = `${prefix}size:`
  const link = await openLink({ prefix: ownPrefix })
  const replay = new RedisReplayStore(link)
  t.teardown(() => replay.close())
  t.equal(await replay.size(), 0)
  await Promise.all(Array.from({ length: 300 }, (_, i) => replay.remember(`e${i}`, i % 2 ? 60_000 : 5_000)))
  await Promise.all(Array.from({ length: 50 }, (_, i) => replay.remember(`e${i}`, 60_000))) // replays add nothing
  t.equal(await replay.size(), 300)
})

t.test('redis: a hung Redis fails each call within the timeout', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const link = await openLink({ url: server.url, timeoutMs: 300 })
  const replay = new RedisReplayStore(link)
  const limits = new RedisRateLimitStore(link)
  t.teardown(async () => {
    await server.stop()
    await replay.close()
    await limits.close()
  })
  t.equal(await replay.remember('before', 10_000), true)
  server.pause()
  for (const call of [() => replay.remember('during', 10_000), () => limits.hit('during', 10_000), () => limits.peek('during')]) {
    const started = performance.now()
    const err: unknown = await call().then(() => undefined, (e: unknown) => e)
    const took = performance.now() - started
    t.type(err, StoreUnavailableError)
    t.equal((err as StoreUnavailableError).reason, 'unreachable')
    t.ok(took >= 250 && took < 1000, `failed after the timeout (${Math.round(took)}ms)`)
  }
  server.resume()
  t.equal(await replay.remember('before', 10_000), false, 'answers again once Redis does')
})

t.test('redis: a stopped Redis fails at once, and the same link recovers when it returns', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort())
  await server.start()
  const link = await openLink({ url: server.url, timeoutMs: 1000 })
  const limits = new RedisRateLimitStore(link)
  t.teardown(async () => {
    await server.stop()
    await limits.close()
  })
  t.equal((await limits.hit('k', 10_000)).count, 1)
  await server.stop()
  const started = performance.now()
  await t.rejects(limits.hit('k', 10_000), StoreUnavailableError)
  t.ok(performance.now() - started < 200, 'no waiting on a refused connection')
  await server.start()
  t.ok(await link.waitReady(5000), 'reconnected by itself')
  t.equal((await limits.hit('k', 10_000)).count, 1, 'counting again (a fresh server)')
})

t.test('redis: ACL user and password in the URL', { skip: redisSkip }, async (t) => {
  const server = new PrivateRedis(await freePort(), ['--user', 'default', 'off', '--user', 'gateway', 'on', '>a-long-test-password', '~*', '+@all'])
  await server.start()
  t.teardown(() => server.stop())
  const link = await openLink({ url: `redis://gateway:a-long-test-password@127.0.0.1:${server.port}` })
  const replay = new RedisReplayStore(link)
  t.equal(await replay.remember('acl', 10_000), true)
  await replay.close()

  const wrong = new RedisLink({ url: `redis://gateway:wrong@127.0.0.1:${server.port}`, prefix, timeoutMs: 300 })
  t.equal(await wrong.waitReady(500), false, 'a wrong password never becomes ready')
  const wrongReplay = new RedisReplayStore(wrong)
  await t.rejects(wrongReplay.remember('acl', 10_000), StoreUnavailableError)
  await wrongReplay.close()
})

t.test('redis: the commands of one event-loop turn leave in one socket write, and each gets its own answer', { skip: redisSkip }, async (t) => {
  const link = await openLink()
  const limits = new RedisRateLimitStore(link)
  t.teardown(() => limits.close())
  await limits.hit('warm', 60_000) // the first call may load the script
  // Count what reaches the socket: one _write or _writev call is one write(2)/writev(2) at most.
  const socket = (link.client as unknown as { stream: { _write: (...a: unknown[]) => unknown; _writev: (...a: unknown[]) => unknown } }).stream
  let writes = 0
  const write = socket._write
  const writev = socket._writev
  socket._write = function (this: unknown, ...a: unknown[]) {
    writes++
    return write.apply(this, a)
  }
  socket._writev = function (this: unknown, ...a: unknown[]) {
    writes++
    return writev.apply(this, a)
  }
  t.teardown(() => {
    socket._write = write
    socket._writev = writev
  })
  const hits = await Promise.all(Array.from({ length: 40 }, (_, i) => limits.hit(`batch-${i % 4}`, 60_000)))
  t.ok(writes >= 1 && writes <= 2, `40 commands in ${writes} write(s)`)
  // Each answer is its own command's: keys batch-0..3 counted 1..10 each, in the order issued.
  for (let k = 0; k < 4; k++) t.same(hits.filter((_, i) => i % 4 === k).map((h) => h.count), Array.from({ length: 10 }, (_, i) => i + 1), `batch-${k} counted in order`)
  // Commands of a later turn go out on their own (the connection was uncorked).
  writes = 0
  t.equal((await limits.hit('batch-0', 60_000)).count, 11)
  t.equal(writes, 1, 'a lone command is written at once, in its own turn')
})
