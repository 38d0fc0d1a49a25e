// Step 5 of the pipeline for rate limits: per-route request limits (by identity or client IP) and
// the per-IP throttle on failed authentications. Counting lives in the state store; this module
// only decides keys, limits and the x-ratelimit-* / Retry-After headers.
import type { CompiledRoute, Gateway, RateLimitPolicy } from '../config/compile.js'
import type { Identity } from '../auth/types.js'
import type { RateLimitHit } from '../state/types.js'
import type { State } from '../state/index.js'
import { rateLimitBucket } from '../state/client-ip.js'
import { then, type MaybePromise } from '../maybe.js'

/** The replay cache and counters, kept across reloads (src/state). */
export type GatewayState = Pick<State, 'replay' | 'limits' | 'effectiveMax'>

export type LimitHeaders = Record<string, string>

function headersFor(max: number, hit: RateLimitHit, limited: boolean): LimitHeaders {
  const reset = String(Math.max(0, Math.ceil(hit.ttlMs / 1000)))
  const h: LimitHeaders = {
    'x-ratelimit-limit': String(max),
    'x-ratelimit-remaining': String(Math.max(0, max - hit.count)),
    'x-ratelimit-reset': reset,
  }
  if (limited) h['retry-after'] = reset
  return h
}

/** Before authenticating: an IP past `authFailures` gets 429 until its window ends. */
export function checkAuthFailures(state: GatewayState, gw: Gateway, ip: string): MaybePromise<LimitHeaders | undefined> {
  const policy = gw.defaults.authFailures
  if (!policy) return undefined
  return then(state.limits.peek('af:' + rateLimitBucket(ip)), (hit) => {
    const max = state.effectiveMax(policy.max, hit)
    if (!hit || hit.count < max) return undefined
    return headersFor(max, hit, true)
  })
}

/** After a 401: count one failure for this IP. */
export function countAuthFailure(state: GatewayState, gw: Gateway, ip: string): MaybePromise<void> {
  const policy = gw.defaults.authFailures
  if (policy) return then(state.limits.hit('af:' + rateLimitBucket(ip), policy.windowMs), () => undefined)
}

export function rateLimitKey(route: Pick<CompiledRoute, 'id'>, policy: RateLimitPolicy, identity: Identity | undefined, ip: string): string {
  const subject = policy.by === 'identity' && identity ? 'id:' + identity.name : 'ip:' + rateLimitBucket(ip)
  return `rl:${route.id}:${subject}`
}

/** A route limit's verdict on a counted hit. */
function verdict(state: GatewayState, policy: RateLimitPolicy, hit: RateLimitHit): { ok: boolean; headers: LimitHeaders } {
  const max = state.effectiveMax(policy.max, hit)
  const limited = hit.count > max
  return { ok: !limited, headers: headersFor(max, hit, limited) }
}

/**
 * `checkAuthFailures`, then `countRequest` only if the address is not throttled — in one store call. The
 * caller has a route with a limit and a gateway with an authFailures policy.
 */
export function throttleThenCount(
  state: GatewayState,
  gw: Gateway,
  route: Pick<CompiledRoute, 'id' | 'rateLimit'>,
  identity: Identity | undefined,
  ip: string,
): MaybePromise<{ throttled: LimitHeaders } | { ok: boolean; headers: LimitHeaders }> {
  const throttle = gw.defaults.authFailures!
  const policy = route.rateLimit!
  return then(state.limits.peekThenHit('af:' + rateLimitBucket(ip), throttle.max, rateLimitKey(route, policy, identity, ip), policy.windowMs), (r) => {
    if (r.hit === undefined) return { throttled: headersFor(state.effectiveMax(throttle.max, r.peeked), r.peeked!, true) }
    return verdict(state, policy, r.hit)
  })
}

/** Count this request against its route's limit; undefined when the route has none. */
export function countRequest(
  state: GatewayState,
  route: Pick<CompiledRoute, 'id' | 'rateLimit'>,
  identity: Identity | undefined,
  ip: string,
): MaybePromise<{ ok: boolean; headers: LimitHeaders } | undefined> {
  const policy = route.rateLimit
  if (!policy) return undefined
  return then(state.limits.hit(rateLimitKey(route, policy, identity, ip), policy.windowMs), (hit) => verdict(state, policy, hit))
}
