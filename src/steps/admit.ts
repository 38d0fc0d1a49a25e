// Steps 3–5 (DESIGN §3) on a route whose credential is answered from the compiled config alone: a public
// route, or one whose methods are all bearer, apiKey or mtls (a digest lookup or a certificate's fields —
// no body, no signature, no remote key set, no replay mark). There the auth-failure throttle's read and
// the route limit's count go to the store in one call, one round trip in redis mode instead of two. The
// decision is the one the steps make one by one (steps/authenticate.ts, steps/limits.ts):
// - the throttle answers first: a throttled request is refused 429 whatever it carries; its credential is
//   never acted on — not logged, not reported, its identity's limit not counted;
// - only a request the one-by-one steps would count is counted: an identity the route's roles allow (or
//   any request on a public route), on a route with a limit, from an address the throttle lets through.
// Every other case (a refused credential, a 403, no limit or no throttle) takes the steps one by one.
// One difference is left, in what a 503 STATE_UNAVAILABLE's audit line names: one by one, a Redis that
// answers the throttle's read and then stops answering gives a 503 naming the identity; here the one
// script fails as a whole and the 503 names none (on Cluster, where the two are separate calls, it does).
import type { IncomingMessage } from 'node:http'
import type { AuthResult } from '../auth/authenticate.js'
import type { CompiledRoute } from '../config/compile.js'
import type { Denial, Exchange } from '../exchange.js'
import { isPending, then, type MaybePromise } from '../maybe.js'
import { throttleThenCount } from '../policy/limits.js'
import { StoreUnavailableError } from '../state/types.js'
import { authenticateRequest, checkRoles, checkThrottle, rolesDenial, settleCredentials } from './authenticate.js'
import { checkReplayAndLimit } from './limits.js'

/** Synchronous (no promise) in memory mode for a bearer, apiKey, mtls or public request. */
export function admitLocally(x: Exchange, req: IncomingMessage, route: CompiledRoute): MaybePromise<Denial | undefined> {
  if (route.public) return admit(x, route, undefined)
  return then(authenticateRequest(x, req), (auth) => admit(x, route, auth))
}

function admit(x: Exchange, route: CompiledRoute, auth: AuthResult | undefined): MaybePromise<Denial | undefined> {
  const identity = auth?.kind === 'identity' ? auth.identity : undefined
  const counted = route.rateLimit !== null && x.gw.defaults.authFailures !== null && (auth === undefined || (identity !== undefined && !rolesDenial(route, identity)))
  if (!counted) return oneByOne(x, () => (auth ? settleCredentials(x, auth) : undefined))
  const decided = then(throttleThenCount(x.rt.state, x.gw, route, identity, x.ip), (r): Denial | undefined => {
    if ('throttled' in r) return { code: 'RATE_LIMITED', headers: r.throttled, limitedBy: 'authFailures' }
    if (identity) x.identity = identity
    if (!r.ok) return { code: 'RATE_LIMITED', headers: r.headers, limitedBy: route.rateLimit!.by }
    x.limitHeaders = r.headers
    return undefined
  })
  // The store failed (onStoreError deny: 503). The steps one by one would have taken the identity before
  // counting: when only the count failed (Cluster: its node, not the throttle's), the 503 names it too.
  if (isPending(decided)) {
    return Promise.resolve(decided).catch((err: unknown) => {
      if (identity && err instanceof StoreUnavailableError && err.afterPeek) x.identity = identity
      throw err
    })
  }
  return decided
}

/**
 * Steps 3–5 one after another: the throttle, then `credentials` (authenticate and act on the result; only
 * called once the throttle let the request through), the roles, the replay mark and the count. Synchronous
 * when each step is (memory mode, a credential that needs no body): a promise only for what is pending.
 */
export function oneByOne(x: Exchange, credentials: () => MaybePromise<Denial | undefined>): MaybePromise<Denial | undefined> {
  return then(checkThrottle(x), (throttled) => throttled ?? then(credentials(), (refused) => refused ?? checkRoles(x) ?? checkReplayAndLimit(x)))
}
