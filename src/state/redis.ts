// Replay cache and rate-limit counters in Redis, shared by every replica; all keys live under the configured prefix.
// Every call is bounded by the state timeout and fails as StoreUnavailableError; a command is never resent
// after a reconnect (a resent SET NX would report a first use as a replay, a resent INCR would count twice).

import { Redis } from 'ioredis'
import { StoreUnavailableError, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'

/** Replay entries are counted per expiry second (see RedisReplayStore.size). */
const COUNT_BUCKET_MS = 1000
/** size() looks at most this far ahead; replay ttls are signature windows (minutes). */
const MAX_COUNT_HORIZON_MS = 24 * 60 * 60 * 1000
const MGET_CHUNK = 1000
const RECONNECT_CAP_MS = 1000

// KEYS: replay key, its expiry-second counter, the horizon key. ARGV: ttl ms, counter's expire-at (unix ms).
const REMEMBER_LUA = `
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 0 end
redis.call('INCR', KEYS[2])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
local horizon = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[1]) >= horizon then redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[1]) end
return 1
`

// The window starts at the key's first request: only the INCR that creates the key sets its expiry.
// A key found without one (PTTL -1, e.g. written by hand) gets it too, so no counter lives forever.
const HIT_LUA = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
`

const PEEK_LUA = `
local count = redis.call('GET', KEYS[1])
if not count then return nil end
return {tonumber(count), redis.call('PTTL', KEYS[1])}
`

interface ScriptedRedis extends Redis {
  portcullisRemember(key: string, counter: string, horizon: string, ttlMs: number, counterExpireAt: number): Promise<number>
  portcullisHit(key: string, windowMs: number): Promise<[number, number]>
  portcullisPeek(key: string): Promise<[number, number] | null>
}

export interface RedisLinkOptions {
  url: string
  prefix: string
  timeoutMs: number
}

/**
 * One ioredis connection shared by the replay and rate-limit stores of a State. It reconnects in the
 * background forever (capped backoff), so Redis coming back needs no restart; while it is not connected
 * commands fail at once instead of queueing. `rediss://` and `redis://user:password@host` work as ioredis reads them.
 */
export class RedisLink {
  readonly client: ScriptedRedis
  readonly prefix: string
  /** Bound on each call; mutable so a reload can change `state.timeout`. */
  timeoutMs: number
  #users = 0

  constructor(opts: RedisLinkOptions) {
    this.prefix = opts.prefix
    this.timeoutMs = opts.timeoutMs
    const client = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.max(opts.timeoutMs, 500),
      retryStrategy: (times) => Math.min(50 * times, RECONNECT_CAP_MS),
      connectionName: 'portcullis',
    })
    // Without a listener an unreachable Redis would crash the process; reachability is read from `status`.
    client.on('error', () => {})
    client.defineCommand('portcullisRemember', { numberOfKeys: 3, lua: REMEMBER_LUA })
    client.defineCommand('portcullisHit', { numberOfKeys: 1, lua: HIT_LUA })
    client.defineCommand('portcullisPeek', { numberOfKeys: 1, lua: PEEK_LUA, readOnly: true })
    this.client = client as ScriptedRedis
  }

  /** Connected and past the ready check. */
  get connected(): boolean {
    return this.client.status === 'ready'
  }

  /** Resolves true once connected, false if that takes longer than `ms` (the connection keeps trying). */
  waitReady(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        this.client.off('ready', onReady)
        resolve(ok)
      }
      const onReady = () => done(true)
      const timer = setTimeout(() => done(false), ms)
      this.client.on('ready', onReady)
    })
  }

  /** Runs one Redis call within `timeoutMs`; any failure becomes StoreUnavailableError('unreachable'). */
  call<T>(run: (client: ScriptedRedis) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new StoreUnavailableError(`redis did not answer within ${this.timeoutMs}ms`, 'unreachable'))
      }, this.timeoutMs)
      let pending: Promise<T>
      try {
        pending = run(this.client)
      } catch (err) {
        pending = Promise.reject(err)
      }
      pending.then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(new StoreUnavailableError(`redis unavailable: ${err instanceof Error ? err.message : String(err)}`, 'unreachable'))
        },
      )
    })
  }

  /** Each store holds the link; the connection closes when the last one lets go. */
  hold(): void {
    this.#users += 1
  }

  async release(): Promise<void> {
    this.#users -= 1
    if (this.#users > 0) return
    if (this.connected) {
      // QUIT lets in-flight answers arrive; bounded, since a hung Redis would never answer it.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        this.client.quit().catch(() => {}),
        new Promise((resolve) => (timer = setTimeout(resolve, this.timeoutMs))),
      ])
      clearTimeout(timer)
    }
    this.client.disconnect()
  }
}

/**
 * `SET <prefix>replay:<key> 1 PX ttl NX`: the first replica to write a key wins, every later one sees a replay.
 *
 * size() is a gauge, so it is approximate and cheap rather than exact: each first use also increments a
 * counter named after the second its entry expires (`<prefix>replay-count:<unix second>`, which itself
 * expires at the end of that second), and `<prefix>replay-horizon` holds the longest ttl in use. size()
 * sums the counters from now to now + horizon with one MGET (about 600 keys for a 5-minute window
 * either side). It may over-count entries expiring within the current second and drifts with clock
 * skew between replicas. Never DBSIZE or SCAN: the database may be shared.
 */
export class RedisReplayStore implements ReplayStore {
  readonly kind = 'redis' as const
  readonly #link: RedisLink

  constructor(link: RedisLink) {
    this.#link = link
    link.hold()
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlMs))
    const bucket = Math.floor((Date.now() + ttl) / COUNT_BUCKET_MS)
    const p = this.#link.prefix
    const first = await this.#link.call((r) =>
      r.portcullisRemember(`${p}replay:${key}`, `${p}replay-count:${bucket}`, `${p}replay-horizon`, ttl, (bucket + 1) * COUNT_BUCKET_MS),
    )
    return first === 1
  }

  async size(): Promise<number> {
    const p = this.#link.prefix
    const horizon = Math.min(Number((await this.#link.call((r) => r.get(`${p}replay-horizon`))) ?? 0), MAX_COUNT_HORIZON_MS)
    if (!(horizon > 0)) return 0
    const now = Date.now()
    const from = Math.floor(now / COUNT_BUCKET_MS)
    const to = Math.floor((now + horizon) / COUNT_BUCKET_MS)
    let total = 0
    for (let start = from; start <= to; start += MGET_CHUNK) {
      const keys: string[] = []
      for (let b = start; b <= Math.min(to, start + MGET_CHUNK - 1); b++) keys.push(`${p}replay-count:${b}`)
      const counts = await this.#link.call((r) => r.mget(keys))
      for (const c of counts) total += c === null ? 0 : Number(c)
    }
    return total
  }

  close(): Promise<void> {
    return this.#link.release()
  }
}

/** Fixed windows from a key's first request (`<prefix>rl:<key>`), counted in one round trip by a Lua script. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const
  readonly #link: RedisLink

  constructor(link: RedisLink) {
    this.#link = link
    link.hold()
  }

  async hit(key: string, windowMs: number): Promise<RateLimitHit> {
    const window = Math.max(1, Math.ceil(windowMs))
    const [count, ttlMs] = await this.#link.call((r) => r.portcullisHit(`${this.#link.prefix}rl:${key}`, window))
    return { count: Number(count), ttlMs: Number(ttlMs) }
  }

  async peek(key: string): Promise<RateLimitHit | undefined> {
    const reply = await this.#link.call((r) => r.portcullisPeek(`${this.#link.prefix}rl:${key}`))
    if (reply === null || reply === undefined) return undefined
    return { count: Number(reply[0]), ttlMs: Math.max(0, Number(reply[1])) }
  }

  close(): Promise<void> {
    return this.#link.release()
  }
}
