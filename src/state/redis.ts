// Replay cache and rate-limit counters in Redis (one server, behind Sentinel, or a Cluster), shared by every
// replica; all keys live under the configured prefix. Every call is bounded by the state timeout and fails as
// StoreUnavailableError; a command is never resent after a reconnect or failover (a resent SET NX would report
// a first use as a replay, a resent INCR would count twice).

import type { Writable } from 'node:stream'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import { keyLayout, type KeyLayout } from './redis-keys.js'
import { StoreUnavailableError, type PeekThenHit, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'

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

// One request counted for `key` in a window of `windowMs` (Lua expressions), leaving `count` and `ttl`.
// The window starts at the key's first request: only the INCR that creates the key sets its expiry.
// A key found without one (PTTL -1, e.g. written by hand) gets it too, so no counter lives forever.
const countLua = (key: string, windowMs: string) => `
local count = redis.call('INCR', ${key})
local ttl = redis.call('PTTL', ${key})
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', ${key}, ${windowMs})
  ttl = tonumber(${windowMs})
end`

const HIT_LUA = `${countLua('KEYS[1]', 'ARGV[1]')}
return {count, ttl}
`

const PEEK_LUA = `
local count = redis.call('GET', KEYS[1])
if not count then return nil end
return {tonumber(count), redis.call('PTTL', KEYS[1])}
`

// The auth-failure read and a request's count in one round trip (keys in one slot: not on Cluster).
// KEYS: the peeked key, the counted key. ARGV: the peek's max, the window ms. Returns {peeked count,
// peeked ttl} when the peeked count stops the request (nothing counted), else {peeked count or -1 when
// absent, peeked ttl, count, ttl} — the count made as HIT_LUA makes it.
const PEEK_THEN_HIT_LUA = `
local peeked = redis.call('GET', KEYS[1])
local peekedTtl = -2
if peeked then
  peeked = tonumber(peeked)
  peekedTtl = redis.call('PTTL', KEYS[1])
  if peeked >= tonumber(ARGV[1]) then return {peeked, peekedTtl} end
else
  peeked = -1
end${countLua('KEYS[2]', 'ARGV[2]')}
return {peeked, peekedTtl, count, ttl}
`

/** What the stores use of an ioredis client; Redis (single, Sentinel) and Cluster both provide it. */
export interface ScriptedRedis {
  readonly status: string
  get(key: string): Promise<string | null>
  mget(keys: string[]): Promise<(string | null)[]>
  ping(): Promise<string>
  quit(): Promise<unknown>
  disconnect(): void
  on(event: string, listener: (...args: never[]) => void): unknown
  off(event: string, listener: (...args: never[]) => void): unknown
  portcullisRemember(key: string, counter: string, horizon: string, ttlMs: number, counterExpireAt: number): Promise<number>
  portcullisHit(key: string, windowMs: number): Promise<[number, number]>
  portcullisPeek(key: string): Promise<[number, number] | null>
  portcullisPeekThenHit(peekKey: string, key: string, peekMax: number, windowMs: number): Promise<[number, number] | [number, number, number, number]>
}

export interface RedisNode {
  host: string
  port: number
}

/**
 * Where the state lives: `url` alone (one server), `sentinels` + `name` (the primary the sentinels name), or
 * `cluster` seeds (one is enough). With sentinels or cluster, `url` only carries the data nodes' ACL user,
 * password and `rediss://` TLS; its host is not used.
 */
export interface RedisTarget {
  url?: string
  sentinels?: RedisNode[]
  name?: string
  cluster?: RedisNode[]
}

export interface RedisLinkOptions extends RedisTarget {
  prefix: string
  timeoutMs: number
}

/** ACL user, password and TLS of the data nodes, read from `url` (never logged). */
function credentials(url: string | undefined): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  if (url === undefined) return {}
  const u = new URL(url)
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname } } : {}),
  }
}

// The no-resend rule, for every connection: nothing queued while disconnected, nothing retried or resent
// after a reconnect. A command whose connection dies fails, and the request follows onStoreError.
const NO_RESEND: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false }

function connect(opts: RedisLinkOptions): Redis | Cluster {
  const base: RedisOptions = {
    ...NO_RESEND,
    // One Redis (or Sentinel's primary): commands go out as written, and RedisLink batches them itself by
    // corking the connection for one turn of the event loop (RedisLink.#batch). ioredis's auto-pipelining
    // did the same batching at twice the cost per command (a Pipeline per batch, a second Command and
    // promise per command: ~18 % less gateway CPU per redis-mode request without it, docs/performance.md).
    // Cluster keeps ioredis's auto-pipelining below: there each node has its own connection.
    // Batching only changes how commands are written, not whether one is ever resent.
    enableAutoPipelining: false,
    connectTimeout: Math.max(opts.timeoutMs, 500),
    retryStrategy: (times) => Math.min(50 * times, RECONNECT_CAP_MS),
    connectionName: 'portcullis',
  }
  if (opts.cluster !== undefined) {
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      // ioredis resends a command whose node connection closed after `retryDelayOnFailover`: never.
      retryDelayOnFailover: 0,
      // CLUSTERDOWN: the node refused without running it; failing at once lets onStoreError answer now
      // instead of a retry landing after the request was already answered.
      retryDelayOnClusterDown: 0,
      // MOVED / ASK / TRYAGAIN are refusals too (nothing ran): following them is safe and stays bounded.
      maxRedirections: 8,
      clusterRetryStrategy: (times) => Math.min(50 * times, RECONNECT_CAP_MS),
      slotsRefreshTimeout: Math.max(opts.timeoutMs, 500),
      redisOptions: { ...base, ...credentials(opts.url) },
    }
    return new Cluster(opts.cluster, clusterOptions)
  }
  if (opts.sentinels !== undefined) {
    const creds = credentials(opts.url)
    return new Redis({
      ...base,
      ...creds,
      sentinels: opts.sentinels,
      name: opts.name!,
      // TLS here is to the data nodes; the sentinels are asked in plain text.
      ...(creds.tls ? { enableTLSForSentinelMode: true } : {}),
      sentinelCommandTimeout: Math.max(opts.timeoutMs, 500),
      sentinelRetryStrategy: (times) => Math.min(50 * times, RECONNECT_CAP_MS),
      // A promotion is found by the connection to the old primary breaking, or by a demoted primary
      // answering writes with READONLY: either way reconnect (the sentinels name the new one), never resend.
      // Not ioredis' failoverDetector: its +switch-master can land while a reconnect is resolving the
      // primary, and that ends the client for good (status "end", no further reconnect).
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
    })
  }
  if (opts.url === undefined) throw new Error('state.redis needs url, sentinels + name, or cluster')
  return new Redis(opts.url, base)
}

/**
 * One ioredis client shared by the replay and rate-limit stores of a State. It reconnects in the background
 * forever (capped backoff), so Redis coming back — or the sentinels naming a new primary — needs no restart;
 * while it is not connected commands fail at once instead of queueing.
 */
export class RedisLink {
  readonly client: ScriptedRedis
  readonly keys: KeyLayout
  /** Bound on each call; mutable so a reload can change `state.timeout`. */
  timeoutMs: number
  readonly #cluster: Cluster | undefined
  readonly #readyListeners: (() => void)[] = []
  #users = 0
  #closing = false
  /** A connection corked until the event loop's next check phase (single Redis and Sentinel only). */
  #corked: Writable | undefined

  constructor(opts: RedisLinkOptions) {
    this.keys = keyLayout(opts.prefix, opts.cluster !== undefined)
    this.timeoutMs = opts.timeoutMs
    const client = connect(opts)
    // Without a listener an unreachable Redis would crash the process; reachability is read from `status`.
    client.on('error', () => {})
    client.defineCommand('portcullisRemember', { numberOfKeys: 3, lua: REMEMBER_LUA })
    client.defineCommand('portcullisHit', { numberOfKeys: 1, lua: HIT_LUA })
    client.defineCommand('portcullisPeek', { numberOfKeys: 1, lua: PEEK_LUA, readOnly: true })
    client.defineCommand('portcullisPeekThenHit', { numberOfKeys: 2, lua: PEEK_THEN_HIT_LUA })
    this.client = client as unknown as ScriptedRedis
    client.on('ready', () => this.#ready())
    // ioredis gives up in a few corner cases (status "end"); a store must keep trying for as long as it runs.
    client.on('end', () => {
      if (this.#closing) return
      setTimeout(() => {
        if (!this.#closing && client.status === 'end') client.connect().catch(() => {})
      }, RECONNECT_CAP_MS).unref()
    })
    if (client instanceof Cluster) {
      this.#cluster = client
      // ioredis connects a node on its first command, and refuses the commands that arrive while that
      // connection is being made (no offline queue): connect every node as soon as it is known instead.
      client.on('+node', (node: Redis) => {
        node.on('ready', () => this.#ready())
        if (node.status === 'wait') node.connect().catch(() => {})
      })
    }
  }

  /** Connected and past the ready check; on Cluster, to every master. */
  get connected(): boolean {
    if (this.client.status !== 'ready') return false
    return this.#cluster === undefined || this.#cluster.nodes('master').every((n) => n.status === 'ready')
  }

  /** Called each time the link may have become usable again (a reconnect, a failover, a cluster node up). */
  onReady(listener: () => void): () => void {
    this.#readyListeners.push(listener)
    return () => {
      const i = this.#readyListeners.indexOf(listener)
      if (i !== -1) this.#readyListeners.splice(i, 1)
    }
  }

  #ready(): void {
    if (this.#cluster?.status === 'ready') {
      for (const n of this.#cluster.nodes('all')) if (n.status === 'wait') n.connect().catch(() => {})
    }
    if (!this.connected) return
    for (const l of this.#readyListeners) l()
  }

  /** Resolves true once connected, false if that takes longer than `ms` (the connection keeps trying). */
  waitReady(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        stop()
        resolve(ok)
      }
      const timer = setTimeout(() => done(false), ms)
      const stop = this.onReady(() => done(true))
    })
  }

  /**
   * Commands issued in one turn of the event loop (many requests' counters) leave in one write: the
   * connection is corked at the first and uncorked once the loop has handled the I/O it had (setImmediate),
   * so a command waits at most that turn. Corking changes how commands are written, never what is sent.
   */
  #batch(): void {
    if (this.#corked !== undefined || this.#cluster !== undefined) return
    const stream = (this.client as unknown as { stream?: Writable }).stream
    if (stream === undefined || !stream.writable) return
    stream.cork()
    this.#corked = stream
    setImmediate(() => {
      this.#corked = undefined
      stream.uncork()
    })
  }

  /** Runs one Redis call within `timeoutMs`; any failure becomes StoreUnavailableError('unreachable'). */
  call<T>(run: (client: ScriptedRedis) => Promise<T>): Promise<T> {
    this.#batch()
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
    this.#closing = true
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
    const k = this.#link.keys
    const tag = k.tagOf(key)
    const first = await this.#link.call((r) =>
      r.portcullisRemember(k.replay(tag, key), k.replayCount(tag, bucket), k.replayHorizon(tag), ttl, (bucket + 1) * COUNT_BUCKET_MS),
    )
    return first === 1
  }

  /** On Cluster: the sum over every hash tag's counters, so the whole cluster's count (not one node's). */
  async size(): Promise<number> {
    const counts = await Promise.all(this.#link.keys.tags.map((tag) => this.#sizeOf(tag)))
    return counts.reduce((a, b) => a + b, 0)
  }

  async #sizeOf(tag: string): Promise<number> {
    const k = this.#link.keys
    const horizon = Math.min(Number((await this.#link.call((r) => r.get(k.replayHorizon(tag)))) ?? 0), MAX_COUNT_HORIZON_MS)
    if (!(horizon > 0)) return 0
    const now = Date.now()
    const from = Math.floor(now / COUNT_BUCKET_MS)
    const to = Math.floor((now + horizon) / COUNT_BUCKET_MS)
    let total = 0
    for (let start = from; start <= to; start += MGET_CHUNK) {
      const keys: string[] = []
      for (let b = start; b <= Math.min(to, start + MGET_CHUNK - 1); b++) keys.push(k.replayCount(tag, b))
      const counts = await this.#link.call((r) => r.mget(keys))
      for (const c of counts) total += c === null ? 0 : Number(c)
    }
    return total
  }

  close(): Promise<void> {
    return this.#link.release()
  }
}

/** Fixed windows from a key's first request (`<prefix>rl:<key>`, tagged on Cluster), counted in one round trip by a Lua script. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const
  readonly #link: RedisLink

  constructor(link: RedisLink) {
    this.#link = link
    link.hold()
  }

  async hit(key: string, windowMs: number): Promise<RateLimitHit> {
    const window = Math.max(1, Math.ceil(windowMs))
    const k = this.#link.keys
    const [count, ttlMs] = await this.#link.call((r) => r.portcullisHit(k.rateLimit(k.tagOf(key), key), window))
    return { count: Number(count), ttlMs: Number(ttlMs) }
  }

  async peek(key: string): Promise<RateLimitHit | undefined> {
    const k = this.#link.keys
    const reply = await this.#link.call((r) => r.portcullisPeek(k.rateLimit(k.tagOf(key), key)))
    if (reply === null || reply === undefined) return undefined
    return { count: Number(reply[0]), ttlMs: Math.max(0, Number(reply[1])) }
  }

  /** One Redis (single or behind Sentinel): both keys in one script. On Cluster they live on different nodes. */
  get oneTrip(): boolean {
    // Cluster: more than the one empty tag.
    return this.#link.keys.tags.length === 1
  }

  /** One script on one Redis; on Cluster, a peek and then a hit. */
  async peekThenHit(peekKey: string, peekMax: number, key: string, windowMs: number): Promise<PeekThenHit> {
    const k = this.#link.keys
    if (!this.oneTrip) {
      const peeked = await this.peek(peekKey)
      if (peeked !== undefined && peeked.count >= peekMax) return { peeked }
      return { peeked, hit: await this.hit(key, windowMs) }
    }
    const window = Math.max(1, Math.ceil(windowMs))
    const reply = await this.#link.call((r) => r.portcullisPeekThenHit(k.rateLimit(k.tagOf(peekKey), peekKey), k.rateLimit(k.tagOf(key), key), peekMax, window))
    const peekedCount = Number(reply[0])
    const peeked = peekedCount < 0 ? undefined : { count: peekedCount, ttlMs: Math.max(0, Number(reply[1])) }
    if (reply.length === 2) return { peeked }
    return { peeked, hit: { count: Number(reply[2]), ttlMs: Number(reply[3]) } }
  }

  close(): Promise<void> {
    return this.#link.release()
  }
}
