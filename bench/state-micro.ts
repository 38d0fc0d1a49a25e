// Micro-measurement of state store calls per second, memory vs Redis (REDIS_URL, default 127.0.0.1:6379).
// Bounded: a fixed number of calls each; Redis keys go under a per-run prefix and are deleted at the end.
// Run: npx tsc -p tsconfig.json && node dist/bench/state-micro.js

import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { MemoryRateLimitStore, MemoryReplayStore } from '../src/state/memory.js'
import { RedisLink, RedisRateLimitStore, RedisReplayStore } from '../src/state/redis.js'
import type { RateLimitStore, ReplayStore } from '../src/state/types.js'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `portcullis-bench:${randomBytes(6).toString('hex')}:`

async function measure(label: string, calls: number, inFlight: number, call: (i: number) => unknown): Promise<void> {
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < calls) await call(next++)
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  const seconds = (performance.now() - started) / 1000
  console.log(`${label.padEnd(44)} ${Math.round(calls / seconds).toString().padStart(9)} calls/s  (${calls} calls, ${inFlight} in flight)`)
}

async function suite(name: string, replay: ReplayStore, limits: RateLimitStore, calls: number, inFlight: number): Promise<void> {
  const run = randomBytes(4).toString('hex')
  await measure(`${name} replay.remember (new keys)`, calls, inFlight, (i) => replay.remember(`${run}:${i}`, 60_000))
  await measure(`${name} replay.remember (replays)`, calls, inFlight, (i) => replay.remember(`${run}:${i}`, 60_000))
  await measure(`${name} limits.hit (1000 keys)`, calls, inFlight, (i) => limits.hit(`${run}:${i % 1000}`, 60_000))
  await measure(`${name} limits.peek`, calls, inFlight, (i) => limits.peek(`${run}:${i % 1000}`))
}

const memReplay = new MemoryReplayStore(1_000_000)
const memLimits = new MemoryRateLimitStore()
await suite('memory', memReplay, memLimits, 200_000, 1)

const link = new RedisLink({ url, prefix, timeoutMs: 2000 })
if (!(await link.waitReady(3000))) throw new Error(`redis at ${url} not reachable`)
const redisReplay = new RedisReplayStore(link)
const redisLimits = new RedisRateLimitStore(link)
await suite('redis', redisReplay, redisLimits, 10_000, 1)
await suite('redis', redisReplay, redisLimits, 50_000, 64)
const sizeStarted = performance.now()
const size = await redisReplay.size()
console.log(`redis replay.size() = ${size} in ${(performance.now() - sizeStarted).toFixed(1)}ms`)

const admin = new Redis(url)
let cursor = '0'
for (let round = 0; round < 100_000; round++) {
  const [nextCursor, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000)
  if (keys.length > 0) await admin.del(...keys)
  cursor = nextCursor
  if (cursor === '0') break
}
admin.disconnect()
await Promise.all([memReplay.close(), memLimits.close(), redisReplay.close(), redisLimits.close()])
