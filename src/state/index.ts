// The gateway's shared state (replay cache + rate-limit counters) as one object built from `state:` in the config.
// Created once, from the first config, and kept across reloads: counters and replay entries must survive a reload.

import { MemoryRateLimitStore, MemoryReplayStore } from './memory.js'
import { RedisLink, RedisRateLimitStore, RedisReplayStore, type RedisTarget } from './redis.js'
import { Fallback, ResilientRateLimitStore, ResilientReplayStore, StoreHealth, storeErrorPolicy, type ModeListener, type OnStoreError, type StoreErrorMode } from './resilient.js'
import type { RateLimitHit, RateLimitStore, ReplayStore } from './types.js'

export { StoreUnavailableError, type RateLimitHit, type RateLimitStore, type ReplayStore } from './types.js'
export { storeErrorPolicy, type ModeListener, type OnStoreError, type StoreErrorMode } from './resilient.js'
export type { RedisNode, RedisTarget } from './redis.js'

export interface StateOptions {
  store: 'memory' | 'redis'
  /** Required when store is redis: one server (`url`), Sentinel (`sentinels` + `name`) or Cluster (`cluster`). */
  redis?: RedisTarget & { prefix: string }
  /** `state.timeout` in ms: a Redis call unanswered this long counts as Redis being unreachable. */
  timeoutMs: number
  /** Per purpose, or one word for both. */
  onStoreError: OnStoreError | StoreErrorMode
  replicas: number
  maxEntries: number
  /** Called once per change between 'ok' and 'degraded' (redis only), e.g. to log `state.degraded`. */
  onModeChange?: ModeListener
}

export interface State {
  readonly replay: ReplayStore
  readonly limits: RateLimitStore
  /** 'degraded' while Redis is unreachable (never for the memory store). */
  mode(): 'ok' | 'degraded'
  /** False only with store redis while Redis is unreachable and a purpose's onStoreError is deny (drives /readyz). */
  ready(): boolean
  /**
   * The limit to enforce for a route whose configured limit is `max`: ceil(max / replicas) when the count came
   * from the process-local fallback (onStoreError local), `max` otherwise. Pass the hit being judged so a
   * hit counted in Redis just before an outage keeps the full limit; without it, the current mode decides.
   */
  effectiveMax(max: number, hit?: RateLimitHit): number
  /**
   * Apply a reloaded config's `state:`. onStoreError, replicas and timeout take effect at once; the returned
   * list names the keys that changed but need a restart (store, redis url / prefix, maxEntries) — the
   * caller logs it and keeps running with the old values.
   */
  reconfigure(opts: StateOptions): string[]
  close(): Promise<void>
}

/** Keys of `next` that differ from `current` and cannot change without a restart. */
function restartOnly(current: StateOptions, next: StateOptions): string[] {
  const changed: string[] = []
  if (current.store !== next.store) changed.push('state.store')
  if (current.store === 'redis' && next.store === 'redis') {
    const a = current.redis
    const b = next.redis
    if (a?.url !== b?.url) changed.push('state.redis.url')
    if (a?.prefix !== b?.prefix) changed.push('state.redis.prefix')
    if (JSON.stringify(a?.sentinels) !== JSON.stringify(b?.sentinels) || a?.name !== b?.name) changed.push('state.redis.sentinels')
    if (JSON.stringify(a?.cluster) !== JSON.stringify(b?.cluster)) changed.push('state.redis.cluster')
  }
  if (current.maxEntries !== next.maxEntries) changed.push('state.maxEntries')
  return changed
}

function memoryState(opts: StateOptions): State {
  const replay = new MemoryReplayStore(opts.maxEntries)
  const limits = new MemoryRateLimitStore()
  return {
    replay,
    limits,
    mode: () => 'ok',
    ready: () => true,
    effectiveMax: (max) => max,
    reconfigure: (next) => restartOnly(opts, next),
    close: async () => {
      await replay.close()
      await limits.close()
    },
  }
}

async function redisState(opts: StateOptions, redis: RedisTarget & { prefix: string }): Promise<State> {
  const link = new RedisLink({ ...redis, timeoutMs: opts.timeoutMs })
  const health = new StoreHealth(link, opts.onModeChange)
  const fallback = new Fallback(storeErrorPolicy(opts.onStoreError), opts.replicas, opts.maxEntries)
  const replay = new ResilientReplayStore(new RedisReplayStore(link), health, fallback)
  const limits = new ResilientRateLimitStore(new RedisRateLimitStore(link), health, fallback)
  // Starting while Redis is down is allowed (the state is degraded until it connects); wait only briefly.
  await link.waitReady(opts.timeoutMs)
  const scaled = (max: number) => Math.ceil(max / fallback.replicas)
  return {
    replay,
    limits,
    mode: () => (health.up ? 'ok' : 'degraded'),
    ready: () => health.up || (fallback.onStoreError.replay !== 'deny' && fallback.onStoreError.rateLimit !== 'deny'),
    effectiveMax: (max, hit) => {
      if (hit !== undefined) return fallback.localHits.has(hit) ? scaled(max) : max
      return !health.up && fallback.onStoreError.rateLimit === 'local' ? scaled(max) : max
    },
    reconfigure: (next) => {
      fallback.onStoreError = storeErrorPolicy(next.onStoreError)
      fallback.replicas = next.replicas
      link.timeoutMs = next.timeoutMs
      return restartOnly(opts, next)
    },
    close: async () => {
      health.close()
      await replay.close()
      await limits.close()
      await fallback.close()
    },
  }
}

/**
 * Build the state from the first config. With store redis it connects (waiting at most `timeoutMs`; a
 * Redis that is down leaves the state degraded, not failed) and reconnects on its own for as long as it runs.
 */
export function createState(opts: StateOptions): Promise<State> {
  if (opts.store === 'memory') return Promise.resolve(memoryState(opts))
  if (opts.redis === undefined) return Promise.reject(new Error('state.redis is required when state.store is redis'))
  return redisState(opts, opts.redis)
}
