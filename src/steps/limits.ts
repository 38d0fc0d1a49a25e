// Step 5 (DESIGN §3): a signed credential is accepted once (replay cache), then the route's rate limit
// counts the request. The two store calls are independent, so they go out together.
import type { Denial, Exchange } from '../exchange.js'
import { countRequest } from '../policy/limits.js'

export async function checkReplayAndLimit(x: Exchange): Promise<Denial | undefined> {
  const identity = x.identity
  const [fresh, limit] = await Promise.all([
    identity?.replay ? x.rt.state.replay.remember(identity.replay.key, identity.replay.ttlMs) : true,
    countRequest(x.rt.state, x.route!, identity, x.ip),
  ])
  if (!fresh) return { code: 'REPLAYED' }
  if (limit && !limit.ok) return { code: 'RATE_LIMITED', headers: limit.headers, ...(x.route!.rateLimit ? { limitedBy: x.route!.rateLimit.by } : {}) }
  if (limit) x.limitHeaders = limit.headers
  return undefined
}
