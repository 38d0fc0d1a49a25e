// Process-local replay cache and rate-limit counters over lru-cache.
// The replay cache must never drop an unexpired entry: when it is full it refuses (StoreUnavailableError 'full').

import { LRUCache } from 'lru-cache'
import { StoreUnavailableError, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'

/** How many entries at the least-recently-used end `remember` inspects for staleness when the cache is full. */
const TAIL_SCAN = 64
/** A full scan for stale entries costs O(maxEntries); run it at most this often while full. */
const FULL_PURGE_INTERVAL_MS = 1000

export class MemoryReplayStore implements ReplayStore {
  readonly kind = 'memory' as const
  readonly #max: number
  // allowStale only makes iteration yield stale keys (so they can be found and dropped);
  // membership is always decided by has(), which never counts a stale entry.
  readonly #cache: LRUCache<string, true>
  #lastFullPurge = -Infinity

  constructor(maxEntries: number) {
    this.#max = maxEntries
    this.#cache = new LRUCache<string, true>({ max: maxEntries, ttlAutopurge: false, allowStale: true, ttl: 0 })
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    if (this.#cache.has(key)) return false
    // peek() sees a stale entry too (allowStale): overwriting one in place needs no room
    const stalePresent = this.#cache.peek(key) !== undefined
    if (!stalePresent && this.#cache.size >= this.#max && !this.#makeRoom()) {
      throw new StoreUnavailableError(`replay cache full (${this.#max} unexpired entries)`, 'full')
    }
    this.#cache.set(key, true, { ttl: Math.max(1, Math.ceil(ttlMs)) })
    return true
  }

  /** True if `key` is held and unexpired, without remembering it (used after a Redis outage in local mode). */
  seen(key: string): boolean {
    return this.#cache.has(key)
  }

  async size(): Promise<number> {
    this.#cache.purgeStale()
    return this.#cache.size
  }

  async close(): Promise<void> {
    this.#cache.clear()
  }

  // has() never refreshes recency, so the LRU end is the oldest insertion: with one ttl per scheme that is
  // also the first to expire, and dropping stale entries there is O(1). Mixed ttls may leave stale entries
  // deeper in the list; a full purge finds them, rate-limited because it walks every entry.
  #makeRoom(): boolean {
    const stale: string[] = []
    for (const key of this.#cache.rkeys()) {
      if (this.#cache.has(key)) break
      stale.push(key)
      if (stale.length >= TAIL_SCAN) break
    }
    for (const key of stale) this.#cache.delete(key)
    if (this.#cache.size < this.#max) return true
    const now = performance.now()
    if (now - this.#lastFullPurge < FULL_PURGE_INTERVAL_MS) return false
    this.#lastFullPurge = now
    this.#cache.purgeStale()
    return this.#cache.size < this.#max
  }
}

interface Window {
  count: number
  startedAt: number
  windowMs: number
}

/**
 * Fixed windows that start at a key's first request, as @fastify/rate-limit's LocalStore counts.
 * Bounded by `maxKeys`, and a live window is never forgotten to make room: a client rotating addresses
 * (IPv6 /64s are cheap) would otherwise push out windows — its own auth-failure count included — and start
 * afresh. When full, only expired windows are dropped; if none has expired, a key without a live window is
 * answered as over any limit (fail closed) until the oldest window ends.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  readonly kind = 'memory' as const
  readonly #max: number
  // peek() only: recency is never refreshed, so the LRU end is the window that started first.
  readonly #windows: LRUCache<string, Window>
  #lastFullPurge = -Infinity

  constructor(maxKeys = 100_000) {
    this.#max = maxKeys
    this.#windows = new LRUCache<string, Window>({ max: maxKeys, ttlAutopurge: false, allowStale: true })
  }

  async hit(key: string, windowMs: number): Promise<RateLimitHit> {
    const now = performance.now()
    const open = this.#open(key, now)
    if (open !== undefined) {
      open.count += 1
      return { count: open.count, ttlMs: Math.ceil(open.startedAt + open.windowMs - now) }
    }
    const stalePresent = this.#windows.peek(key) !== undefined
    if (!stalePresent && this.#windows.size >= this.#max && !this.#makeRoom(now)) return this.#full(now)
    this.#windows.set(key, { count: 1, startedAt: now, windowMs }, { ttl: Math.max(1, Math.ceil(windowMs)) })
    return { count: 1, ttlMs: windowMs }
  }

  async peek(key: string): Promise<RateLimitHit | undefined> {
    const now = performance.now()
    const open = this.#open(key, now)
    if (open !== undefined) return { count: open.count, ttlMs: Math.ceil(open.startedAt + open.windowMs - now) }
    // full: this key could not be counted, so it must not pass as "never seen" either
    if (this.#windows.size >= this.#max && !this.#makeRoom(now)) return this.#full(now)
    return undefined
  }

  async close(): Promise<void> {
    this.#windows.clear()
  }

  #open(key: string, now: number): Window | undefined {
    const w = this.#windows.peek(key)
    return w !== undefined && w.startedAt + w.windowMs > now ? w : undefined
  }

  /** Over any limit, until the oldest window ends (then there is room again). */
  #full(now: number): RateLimitHit {
    let ttlMs = 1000
    for (const key of this.#windows.rkeys()) {
      const w = this.#windows.peek(key)
      if (w !== undefined) ttlMs = Math.max(1, Math.ceil(w.startedAt + w.windowMs - now))
      break
    }
    return { count: Number.MAX_SAFE_INTEGER, ttlMs }
  }

  #makeRoom(now: number): boolean {
    const stale: string[] = []
    for (const key of this.#windows.rkeys()) {
      const w = this.#windows.peek(key)
      if (w !== undefined && w.startedAt + w.windowMs > now) break
      stale.push(key)
      if (stale.length >= TAIL_SCAN) break
    }
    for (const key of stale) this.#windows.delete(key)
    if (this.#windows.size < this.#max) return true
    if (now - this.#lastFullPurge < FULL_PURGE_INTERVAL_MS) return false
    this.#lastFullPurge = now
    this.#windows.purgeStale()
    return this.#windows.size < this.#max
  }
}
