// Process-local replay cache and rate-limit counters.
// The replay cache must never drop an unexpired entry: when it is full it refuses (StoreUnavailableError 'full').

import { hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { StoreUnavailableError, type PeekThenHit, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'

/** How many entries at the least-recently-used end the rate-limit table inspects for staleness when full. */
const TAIL_SCAN = 64
/** A full scan for stale entries costs O(maxEntries); run it at most this often while full. */
const FULL_PURGE_INTERVAL_MS = 1000
/** The replay table's first allocation, in slots; it doubles as entries arrive, up to 2 × maxEntries rounded up to a power of two. */
const MIN_SLOTS = 1024
/** A rebuild that only drops expired entries walks every slot: not more often than this, even when it would free room. */
const MIN_REBUILD_INTERVAL_MS = 10

function nextPow2(n: number): number {
  let p = 1
  while (p < n) p *= 2
  return p
}

/**
 * An open-addressing table (linear probing) of 128-bit SHA-256 prefixes of the keys and their expiry
 * times, in typed arrays: 24 bytes a slot, at most 2 slots an entry, no object and no timer per entry.
 * SHA-256 keeps both the probe position and a false "replay" out of a client's control. An expired slot
 * is dead: lookups probe past it, an insert reuses it, and a rebuild (growth, or room when full) drops it.
 * `#filled` counts live and dead slots, so live entries never exceed maxEntries and the table is never
 * more than half full.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly kind = 'memory' as const
  readonly #max: number
  readonly #maxSlots: number
  /** 4 words of digest a slot. */
  #keys: Uint32Array
  /** performance.now() ms at which the slot's entry expires; 0 = empty. */
  #expires: Float64Array
  #mask: number
  #filled = 0
  /** No entry expires before this (a lower bound): a rebuild before it would free nothing. */
  #earliest = Infinity
  #lastRebuild = -Infinity

  constructor(maxEntries: number) {
    this.#max = maxEntries
    this.#maxSlots = Math.max(MIN_SLOTS, nextPow2(maxEntries * 2))
    const slots = Math.min(MIN_SLOTS, this.#maxSlots)
    this.#keys = new Uint32Array(slots * 4)
    this.#expires = new Float64Array(slots)
    this.#mask = slots - 1
  }

  remember(key: string, ttlMs: number): boolean {
    const d = digest(key)
    const now = performance.now()
    const exp = now + Math.max(1, Math.ceil(ttlMs))
    for (let attempt = 0; attempt < 3; attempt++) {
      const at = this.#find(d, now)
      if (at.live) return false
      // its own expired slot, or a dead slot on its probe path: no room needed
      const reuse = at.match >= 0 ? at.match : at.dead
      if (reuse >= 0) {
        this.#write(reuse, d, exp)
        return true
      }
      if (this.#filled >= this.#max) {
        if (!this.#rebuild(now, false)) throw new StoreUnavailableError(`replay cache full (${this.#max} unexpired entries)`, 'full')
        continue
      }
      if ((this.#filled + 1) * 2 > this.#expires.length) {
        this.#rebuild(now, true)
        continue
      }
      this.#write(at.empty, d, exp)
      this.#filled += 1
      return true
    }
    // unreachable: a rebuild leaves the table at most half full
    throw new StoreUnavailableError('replay cache could not make room', 'full')
  }

  /** True if `key` is held and unexpired, without remembering it (used after a Redis outage in local mode). */
  seen(key: string): boolean {
    return this.#find(digest(key), performance.now()).live
  }

  async size(): Promise<number> {
    const now = performance.now()
    let live = 0
    for (let i = 0; i < this.#expires.length; i++) if (this.#expires[i]! > now) live++
    return live
  }

  async close(): Promise<void> {
    this.#keys = new Uint32Array(MIN_SLOTS * 4)
    this.#expires = new Float64Array(MIN_SLOTS)
    this.#mask = MIN_SLOTS - 1
    this.#filled = 0
    this.#earliest = Infinity
  }

  /** Walk the probe path of `d` to the first empty slot. */
  #find(d: Uint32Array, now: number): { live: boolean; match: number; dead: number; empty: number } {
    const keys = this.#keys
    const expires = this.#expires
    let i = d[0]! & this.#mask
    let dead = -1
    for (;;) {
      const e = expires[i]!
      if (e === 0) return { live: false, match: -1, dead, empty: i }
      const k = i * 4
      if (keys[k] === d[0] && keys[k + 1] === d[1] && keys[k + 2] === d[2] && keys[k + 3] === d[3]) {
        return e > now ? { live: true, match: i, dead, empty: -1 } : { live: false, match: i, dead, empty: -1 }
      }
      if (e <= now && dead < 0) dead = i
      i = (i + 1) & this.#mask
    }
  }

  #write(i: number, d: Uint32Array, exp: number): void {
    this.#keys.set(d, i * 4)
    this.#expires[i] = exp
    if (exp < this.#earliest) this.#earliest = exp
  }

  /**
   * Copy the live entries into a fresh table: twice the size when growing, else the same size minus the
   * dead. Without growth it runs only if some entry has expired (never to evict a live one) and not
   * within MIN_REBUILD_INTERVAL_MS of the last. Returns whether there is room for one more entry.
   */
  #rebuild(now: number, grow: boolean): boolean {
    if (!grow) {
      if (now < this.#earliest || now - this.#lastRebuild < MIN_REBUILD_INTERVAL_MS) return false
    }
    this.#lastRebuild = now
    const oldKeys = this.#keys
    const oldExpires = this.#expires
    let live = 0
    for (let i = 0; i < oldExpires.length; i++) if (oldExpires[i]! > now) live++
    const slots = Math.min(this.#maxSlots, Math.max(MIN_SLOTS, grow ? oldExpires.length * 2 : oldExpires.length, nextPow2((live + 1) * 2)))
    this.#keys = new Uint32Array(slots * 4)
    this.#expires = new Float64Array(slots)
    this.#mask = slots - 1
    this.#filled = 0
    this.#earliest = Infinity
    const mask = this.#mask
    for (let j = 0; j < oldExpires.length; j++) {
      const e = oldExpires[j]!
      if (e <= now) continue
      const k = j * 4
      let i = oldKeys[k]! & mask
      while (this.#expires[i] !== 0) i = (i + 1) & mask
      this.#keys.set(oldKeys.subarray(k, k + 4), i * 4)
      this.#expires[i] = e
      if (e < this.#earliest) this.#earliest = e
      this.#filled += 1
    }
    return this.#filled < this.#max
  }
}

/** The first 128 bits of SHA-256(key), as 4 words (a fresh array: callers may hold it across a rebuild). */
function digest(key: string): Uint32Array {
  const b = hash('sha256', key, 'buffer') as unknown as Buffer
  return Uint32Array.of(b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12))
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

  hit(key: string, windowMs: number): RateLimitHit {
    return this.#hit(key, windowMs, performance.now())
  }

  peek(key: string): RateLimitHit | undefined {
    return this.#peek(key, performance.now())
  }

  peekThenHit(peekKey: string, peekMax: number, key: string, windowMs: number): PeekThenHit {
    const now = performance.now()
    const peeked = this.#peek(peekKey, now)
    if (peeked !== undefined && peeked.count >= peekMax) return { peeked }
    return { peeked, hit: this.#hit(key, windowMs, now) }
  }

  #hit(key: string, windowMs: number, now: number): RateLimitHit {
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

  #peek(key: string, now: number): RateLimitHit | undefined {
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
