// Applies state.onStoreError around the Redis stores, per purpose (replay, rateLimit): deny lets
// StoreUnavailableError through (→ 503), allow passes every check, local answers from process memory.
// Under deny a check is never skipped; a Redis known to be down is never waited on (a background probe
// finds out when it is back).

import { MemoryRateLimitStore, MemoryReplayStore } from './memory.js'
import type { RedisLink, RedisRateLimitStore, RedisReplayStore } from './redis.js'
import { StoreUnavailableError, type PeekThenHit, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'

export type StoreErrorMode = 'deny' | 'allow' | 'local'

/** What each purpose does while Redis is unreachable; the auth-failure throttle is a rate limit. */
export interface OnStoreError {
  replay: StoreErrorMode
  rateLimit: StoreErrorMode
}

/**
 * `state.onStoreError` as written: absent = `{ replay: deny, rateLimit: local }` (a replay let through is a
 * forged first use; a rate limit counted locally is only less exact), one word = both purposes.
 */
export function storeErrorPolicy(written: StoreErrorMode | Partial<OnStoreError> | undefined): OnStoreError {
  if (typeof written === 'string') return { replay: written, rateLimit: written }
  return { replay: written?.replay ?? 'deny', rateLimit: written?.rateLimit ?? 'local' }
}

/** After a call fails on a connection that still looks up (a hung Redis), PING it this often until it answers. */
const PROBE_INTERVAL_MS = 1000

type Route = 'redis' | 'fallback'

/** Told once per change between 'ok' and 'degraded', with a detail fit for a log line (no credentials). */
export type ModeListener = (mode: 'ok' | 'degraded', detail: string) => void

/**
 * Whether Redis should be asked. Down while the connection is not ready (known at once from ioredis'
 * status; it reconnects by itself) or after a call failed on a ready connection: then requests use the
 * fallback without waiting and a background PING finds out when Redis answers again — on a timer, not
 * on requests, so /readyz recovers even when no traffic arrives.
 */
export class StoreHealth {
  readonly #link: RedisLink
  readonly #onChange: ModeListener | undefined
  #failed = false
  #probe: NodeJS.Timeout | undefined
  #closed = false
  // assumed up until told otherwise, so a healthy start is silent and an unreachable one is reported once
  #reportedUp = true

  constructor(link: RedisLink, onChange?: ModeListener) {
    this.#link = link
    this.#onChange = onChange
    link.onReady(() => this.#recovered())
    link.client.on('close', () => this.#report('connection closed'))
    link.client.on('error', (err: Error) => this.#report(err.message))
  }

  get up(): boolean {
    return this.#link.connected && !this.#failed
  }

  route(): Route {
    return this.up ? 'redis' : 'fallback'
  }

  failed(cause: StoreUnavailableError): void {
    this.#failed = true
    this.#report(cause.message)
    if (this.#probe !== undefined || this.#closed) return
    this.#probe = setInterval(() => {
      if (!this.#link.connected) return // the reconnect's 'ready' will clear the failure
      this.#link.call((r) => r.ping()).then(
        () => this.#recovered(),
        () => {},
      )
    }, PROBE_INTERVAL_MS)
    this.#probe.unref()
  }

  /** Stops probing and reporting (the connection closing at shutdown is no outage). */
  close(): void {
    this.#closed = true
    this.#stopProbe()
  }

  #stopProbe(): void {
    clearInterval(this.#probe)
    this.#probe = undefined
  }

  #recovered(): void {
    this.#failed = false
    this.#stopProbe()
    this.#report('redis answering')
  }

  #report(detail: string): void {
    if (this.#closed) return
    const up = this.up
    if (up === this.#reportedUp) return
    this.#reportedUp = up
    this.#onChange?.(up ? 'ok' : 'degraded', detail)
  }
}

/** The live onStoreError settings and, for `local`, the process-local stores (created on first need). */
export class Fallback {
  onStoreError: OnStoreError
  replicas: number
  readonly #maxEntries: number
  #replay: MemoryReplayStore | undefined
  #limits: MemoryRateLimitStore | undefined
  /** Hits answered by the local store, so effectiveMax knows which limit applies to which answer. */
  readonly localHits = new WeakSet<RateLimitHit>()

  constructor(onStoreError: OnStoreError, replicas: number, maxEntries: number) {
    this.onStoreError = onStoreError
    this.replicas = replicas
    this.#maxEntries = maxEntries
  }

  get replay(): MemoryReplayStore {
    this.#replay ??= new MemoryReplayStore(this.#maxEntries)
    return this.#replay
  }

  get limits(): MemoryRateLimitStore {
    this.#limits ??= new MemoryRateLimitStore()
    return this.#limits
  }

  /** An entry accepted locally during an outage stays a replay after Redis is back. */
  seenLocally(key: string): boolean {
    return this.#replay?.seen(key) ?? false
  }

  async close(): Promise<void> {
    await this.#replay?.close()
    await this.#limits?.close()
  }
}

function unreachable(cause: StoreUnavailableError | undefined): StoreUnavailableError {
  return cause ?? new StoreUnavailableError('redis unreachable', 'unreachable')
}

/** Asks Redis when it should be asked and records the outcome; no `value` means "answer from the fallback". */
async function viaRedis<T>(health: StoreHealth, primary: () => Promise<T>): Promise<{ value: T } | { cause?: StoreUnavailableError }> {
  if (health.route() === 'fallback') return {}
  try {
    return { value: await primary() }
  } catch (err) {
    if (!(err instanceof StoreUnavailableError)) throw err
    health.failed(err)
    return { cause: err }
  }
}

export class ResilientReplayStore implements ReplayStore {
  readonly kind = 'redis' as const

  constructor(
    readonly primary: RedisReplayStore,
    readonly health: StoreHealth,
    readonly fallback: Fallback,
  ) {}

  async remember(key: string, ttlMs: number): Promise<boolean> {
    const answer = await viaRedis(this.health, () => this.primary.remember(key, ttlMs))
    if ('value' in answer) return answer.value && !this.fallback.seenLocally(key)
    switch (this.fallback.onStoreError.replay) {
      case 'deny':
        throw unreachable(answer.cause)
      case 'allow':
        return true
      case 'local':
        return this.fallback.replay.remember(key, ttlMs)
    }
  }

  /** Redis' approximate count; while Redis is down, the local cache's size under `local`, otherwise it throws. */
  async size(): Promise<number> {
    const answer = await viaRedis(this.health, () => this.primary.size())
    if ('value' in answer) return answer.value
    if (this.fallback.onStoreError.replay === 'local') return this.fallback.replay.size()
    throw unreachable(answer.cause)
  }

  close(): Promise<void> {
    return this.primary.close()
  }
}

export class ResilientRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const

  constructor(
    readonly primary: RedisRateLimitStore,
    readonly health: StoreHealth,
    readonly fallback: Fallback,
  ) {}

  async hit(key: string, windowMs: number): Promise<RateLimitHit> {
    const answer = await viaRedis(this.health, () => this.primary.hit(key, windowMs))
    if ('value' in answer) return answer.value
    switch (this.fallback.onStoreError.rateLimit) {
      case 'deny':
        throw unreachable(answer.cause)
      case 'allow':
        return { count: 0, ttlMs: windowMs }
      case 'local': {
        const hit = await this.fallback.limits.hit(key, windowMs)
        this.fallback.localHits.add(hit)
        return hit
      }
    }
  }

  async peek(key: string): Promise<RateLimitHit | undefined> {
    const answer = await viaRedis(this.health, () => this.primary.peek(key))
    if ('value' in answer) return answer.value
    switch (this.fallback.onStoreError.rateLimit) {
      case 'deny':
        throw unreachable(answer.cause)
      case 'allow':
        return undefined
      case 'local': {
        const hit = await this.fallback.limits.peek(key)
        if (hit !== undefined) this.fallback.localHits.add(hit)
        return hit
      }
    }
  }

  async peekThenHit(peekKey: string, peekMax: number, key: string, windowMs: number): Promise<PeekThenHit> {
    // On Cluster the two keys are on two nodes, and one may fail while the other answers: each call then
    // takes its own fallback, as peek() and hit() one after the other would — Redis' answer to the peek
    // is kept when only the count falls back.
    if (!this.primary.oneTrip) {
      const peeked = await this.peek(peekKey)
      const max = peeked !== undefined && this.fallback.localHits.has(peeked) ? Math.ceil(peekMax / this.fallback.replicas) : peekMax
      if (peeked !== undefined && peeked.count >= max) return { peeked }
      try {
        return { peeked, hit: await this.hit(key, windowMs) }
      } catch (err) {
        if (err instanceof StoreUnavailableError) err.afterPeek = true
        throw err
      }
    }
    const answer = await viaRedis(this.health, () => this.primary.peekThenHit(peekKey, peekMax, key, windowMs))
    if ('value' in answer) return answer.value
    switch (this.fallback.onStoreError.rateLimit) {
      case 'deny':
        throw unreachable(answer.cause)
      case 'allow':
        return { peeked: undefined, hit: { count: 0, ttlMs: windowMs } }
      case 'local': {
        // Counted in this process: its share of the limit, as State.effectiveMax judges a local hit.
        const local = await this.fallback.limits.peekThenHit(peekKey, Math.ceil(peekMax / this.fallback.replicas), key, windowMs)
        if (local.peeked !== undefined) this.fallback.localHits.add(local.peeked)
        if (local.hit !== undefined) this.fallback.localHits.add(local.hit)
        return local
      }
    }
  }

  close(): Promise<void> {
    return this.primary.close()
  }
}
