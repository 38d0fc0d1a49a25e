// Step 5's concurrency limit (DESIGN §2 route `concurrency`): requests of one identity or ip in flight
// on a route at once, per gateway process. A slot is held until the exchange's response (or tunnel)
// closes — a streamed response counts until it ends — and is given back exactly once, on every path.
// Counts live in this process only and survive reloads; nothing here touches the state store.
import type { CompiledRoute } from '../config/compile.js'
import type { Identity } from '../auth/types.js'
import { rateLimitBucket } from '../state/client-ip.js'

/** What ends an exchange: a ServerResponse or an upgraded socket ('close' fires once, on every path). */
export interface Lifetime {
  once(event: 'close', listener: () => void): unknown
  /** Either true once the response or socket is already gone (then 'close' will not fire again). */
  readonly destroyed?: boolean
  readonly closed?: boolean
}

export type Admission = { ok: true } | { ok: false; headers: Record<string, string> }

/** In-flight counts by key; an entry exists only while its count is above zero. */
export class InFlight {
  private readonly counts = new Map<string, number>()

  /** Take one of `max` slots of `key`; the returned release gives it back once, however often called. */
  acquire(key: string, max: number): (() => void) | undefined {
    const n = this.counts.get(key) ?? 0
    if (n >= max) return undefined
    this.counts.set(key, n + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.counts.get(key) ?? 1) - 1
      if (left > 0) this.counts.set(key, left)
      else this.counts.delete(key)
    }
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0
  }

  get keys(): number {
    return this.counts.size
  }
}

/** The one table of this process. */
export const inFlight = new InFlight()

/** `by: identity` counts per identity (per client address on a public route, as rate limits do). */
export function concurrencyKey(route: Pick<CompiledRoute, 'id'>, by: 'identity' | 'ip', identity: Identity | undefined, ip: string): string {
  const subject = by === 'identity' && identity ? 'id:' + identity.name : 'ip:' + rateLimitBucket(ip)
  return `${route.id}\n${subject}`
}

/**
 * Admit one request on `route`, its slot held until `lifetime` closes. Beyond `max`: the 429 headers.
 * No `Retry-After` in seconds can be known (a slot frees when another request ends), so 1 is sent:
 * retry soon. `x-ratelimit-reset` says the same.
 */
export function admitConcurrent(
  route: Pick<CompiledRoute, 'id' | 'concurrency'>,
  identity: Identity | undefined,
  ip: string,
  lifetime: Lifetime,
  table: InFlight = inFlight,
): Admission {
  const policy = route.concurrency
  if (!policy) return { ok: true }
  const release = table.acquire(concurrencyKey(route, policy.by, identity, ip), policy.max)
  if (!release) {
    return { ok: false, headers: { 'retry-after': '1', 'x-ratelimit-limit': String(policy.max), 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' } }
  }
  if (lifetime.destroyed || lifetime.closed) release()
  else lifetime.once('close', release)
  return { ok: true }
}
