// Shared state behind two small interfaces: the replay cache and rate-limit counters.
// Memory and Redis implementations live side by side; one contract test suite runs against each.
import type { MaybePromise } from '../maybe.js'

/** Thrown by a store that cannot answer (unreachable, timed out, or full): the pipeline decides per onStoreError. */
export class StoreUnavailableError extends Error {
  /** Set by peekThenHit when its peek was answered and only the count failed (steps/admit.ts). */
  afterPeek = false

  constructor(message: string, readonly reason: 'unreachable' | 'full') {
    super(message)
    this.name = 'StoreUnavailableError'
  }
}

export interface ReplayStore {
  readonly kind: 'memory' | 'redis'
  /**
   * Remember `key` for `ttlMs`. Resolves true if it was not seen before (first use), false if it
   * was (a replay). Never forgets an entry before its ttl; throws StoreUnavailableError instead.
   * The memory store answers at once (no promise), as every store call on the request path may.
   */
  remember(key: string, ttlMs: number): MaybePromise<boolean>
  /** Entries held now (the `portcullis_replay_cache_entries` gauge). */
  size(): Promise<number>
  close(): Promise<void>
}

export interface RateLimitHit {
  /** Requests counted in the current window, this one included. */
  count: number
  /** Milliseconds until the window (which started at the key's first request) ends. */
  ttlMs: number
}

export interface PeekThenHit {
  peeked: RateLimitHit | undefined
  /** The count of `key`, this request included; absent when the peeked count stopped it. */
  hit?: RateLimitHit
}

export interface RateLimitStore {
  readonly kind: 'memory' | 'redis'
  /** Count one request for `key` in a fixed window of `windowMs` that starts at its first request. */
  hit(key: string, windowMs: number): MaybePromise<RateLimitHit>
  /** Read without counting (auth-failure throttling checks before it counts). */
  peek(key: string): MaybePromise<RateLimitHit | undefined>
  /**
   * `peek(peekKey)`, then `hit(key, windowMs)` only if that count is below `peekMax` — in one call (one
   * round trip in Redis). `hit` is absent exactly when the peeked count reached `peekMax`. A store answering
   * from a process-local fallback compares against its share of `peekMax`, as State.effectiveMax does.
   * The memory store answers at once (no promise: this is on every request's path).
   */
  peekThenHit(peekKey: string, peekMax: number, key: string, windowMs: number): MaybePromise<PeekThenHit>
  close(): Promise<void>
}
