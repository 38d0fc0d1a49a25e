// Step 5 (DESIGN §3): a signed credential is accepted once (replay cache), then the route's rate limit
// counts the request (the two store calls are independent, so they go out together), then the route's
// concurrency takes a slot held until the response or tunnel closes (policy/concurrency.ts).
import type { Denial, Exchange } from '../exchange.js'
import { replayMarks } from '../auth/types.js'
import { countRequest } from '../policy/limits.js'
import { admitConcurrent, type Lifetime } from '../policy/concurrency.js'

export async function checkReplayAndLimit(x: Exchange): Promise<Denial | undefined> {
  const identity = x.identity
  const [fresh, limit] = await Promise.all([
    // A group carries every member's mark (DESIGN §4.9): each must be fresh.
    identity ? Promise.all(replayMarks(identity).map((r) => x.rt.state.replay.remember(r.key, r.ttlMs))).then((all) => all.every(Boolean)) : true,
    countRequest(x.rt.state, x.route!, identity, x.ip),
  ])
  if (!fresh) return { code: 'REPLAYED' }
  if (limit && !limit.ok) return { code: 'RATE_LIMITED', headers: limit.headers, ...(x.route!.rateLimit ? { limitedBy: x.route!.rateLimit.by } : {}) }
  if (limit) x.limitHeaders = limit.headers
  return undefined
}

export function checkConcurrency(x: Exchange, lifetime: Lifetime): Denial | undefined {
  const route = x.route!
  if (route.upstream === null || !route.concurrency) return undefined
  const a = admitConcurrent(route, x.identity, x.ip, lifetime)
  return a.ok ? undefined : { code: 'RATE_LIMITED', headers: a.headers, limitedBy: 'concurrency' }
}
