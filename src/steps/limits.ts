// Step 5 (DESIGN §3): a signed credential is accepted once (replay cache), then the route's rate limit
// counts the request (the two store calls are independent, so they go out together; in memory mode both
// answer at once and no promise is made), then the route's concurrency takes a slot held until the
// response or tunnel closes (policy/concurrency.ts).
import type { Denial, Exchange } from '../exchange.js'
import { replayMarks } from '../auth/types.js'
import { countRequest, type LimitHeaders } from '../policy/limits.js'
import { admitConcurrent, type Lifetime } from '../policy/concurrency.js'
import { isPending, settled, type MaybePromise } from '../maybe.js'

type Verdict = { ok: boolean; headers: LimitHeaders } | undefined

export function checkReplayAndLimit(x: Exchange): MaybePromise<Denial | undefined> {
  const identity = x.identity
  // A group carries every member's mark (DESIGN §4.9): each must be fresh.
  // Every store call is made even when one fails (a full memory replay cache throws at once): each mark
  // is remembered where it can be, and the request counted, as when the calls all went out together.
  const fresh = identity ? allFresh(replayMarks(identity).map((r) => settled(() => x.rt.state.replay.remember(r.key, r.ttlMs)))) : true
  const limit = settled(() => countRequest(x.rt.state, x.route!, identity, x.ip))
  const decide = (fresh: boolean, limit: Verdict): Denial | undefined => {
    if (!fresh) return { code: 'REPLAYED' }
    if (limit && !limit.ok) return { code: 'RATE_LIMITED', headers: limit.headers, ...(x.route!.rateLimit ? { limitedBy: x.route!.rateLimit.by } : {}) }
    if (limit) x.limitHeaders = limit.headers
    return undefined
  }
  if (!isPending(fresh) && !isPending(limit)) return decide(fresh, limit)
  return Promise.all([fresh, limit]).then(([f, l]) => decide(f, l))
}

/** true when every mark was first used now; a promise only when a store answer is pending. */
function allFresh(answers: MaybePromise<boolean>[]): MaybePromise<boolean> {
  if (answers.some(isPending)) return Promise.all(answers).then((all) => all.every(Boolean))
  return (answers as boolean[]).every(Boolean)
}

export function checkConcurrency(x: Exchange, lifetime: Lifetime): Denial | undefined {
  const route = x.route!
  if (route.upstream === null || !route.concurrency) return undefined
  const a = admitConcurrent(route, x.identity, x.ip, lifetime)
  return a.ok ? undefined : { code: 'RATE_LIMITED', headers: a.headers, limitedBy: 'concurrency' }
}
