// Step 3 of the pipeline: from a request and its route to one identity or one refusal.
// Refuses ambiguous credentials before any is checked; tries only the route's accepted methods.
import type { IncomingMessage } from 'node:http'
import type { CompiledRoute, Gateway } from '../config/compile.js'
import type { ErrorCode } from '../errors.js'
import { groupKinds } from './groups.js'
import { LOOPBACK } from './methods.js'
import type { AuthOutcome, AuthRequest, Authenticator, CredentialKind, Identity } from './types.js'
import { isPending } from '../maybe.js'

export type AuthResult =
  | { kind: 'identity'; identity: Identity; body?: Buffer }
  | { kind: 'deny'; code: ErrorCode; message?: string; fp?: string; claimed?: string; method?: string; body?: Buffer }

/** The route's groups whose credential kinds are exactly these. */
function groupsFor(auth: readonly Authenticator[], kinds: ReadonlySet<CredentialKind>): Authenticator[] {
  return auth.filter((a) => a.members !== undefined && sameKinds(groupKinds(a.members), kinds))
}

function sameKinds(a: ReadonlySet<CredentialKind>, b: ReadonlySet<CredentialKind>): boolean {
  return a.size === b.size && [...a].every((k) => b.has(k))
}

/**
 * The route's accepted methods on this request. Synchronous when it can be — no body to read and every
 * candidate answering synchronously (bearer, apiKey, mtls): then no promise is made per request.
 */
export function authenticate(
  gw: Gateway,
  route: Pick<CompiledRoute, 'auth' | 'loopbackAllow' | 'missingMessage'>,
  req: IncomingMessage,
  o: { path: string; query: string; tls: boolean; now: number; clientIp: string; readBody: () => Promise<Buffer> },
): AuthResult | Promise<AuthResult> {
  // Ambiguous (DESIGN §3 step 3, §4.9): two Authorization or API-key headers, or two kinds of credential
  // unless they are exactly the kinds of one all-of group the route accepts — and then only such a group
  // may answer, never one method for half of them. Which credentials count is the registry's (auth/methods.ts);
  // a client certificate never does.
  const kinds = gw.credentials.present(req)
  if (kinds === 'duplicate') return { kind: 'deny', code: 'AMBIGUOUS_CREDENTIALS' }
  const candidates = kinds.size > 1 ? groupsFor(route.auth, kinds) : route.auth.filter((a) => a.present(req))
  if (kinds.size > 1 && candidates.length === 0) return { kind: 'deny', code: 'AMBIGUOUS_CREDENTIALS' }
  if (candidates.length === 0) {
    if (route.loopbackAllow && LOOPBACK.admits(req, o.clientIp)) return { kind: 'identity', identity: LOOPBACK.identity() }
    return { kind: 'deny', code: 'MISSING_CREDENTIALS', message: route.missingMessage }
  }
  const ar: AuthRequest = { raw: req, method: req.method ?? 'GET', path: o.path, query: o.query, target: o.path + o.query, tls: o.tls, now: o.now }
  if (gw.server.authorities !== undefined) ar.authorities = gw.server.authorities
  if (candidates.some((a) => a.needsBody?.(req))) {
    return o.readBody().then((body) => {
      ar.body = body
      return tryInTurn(candidates, ar, route, 0, undefined)
    })
  }
  return tryInTurn(candidates, ar, route, 0, undefined)
}

type Refusal = Extract<AuthResult, { kind: 'deny' }>

/** Candidates from `from` on, in order: the first identity wins; else the most specific refusal. */
function tryInTurn(
  candidates: readonly Authenticator[],
  ar: AuthRequest,
  route: Pick<CompiledRoute, 'missingMessage'>,
  from: number,
  refusal: Refusal | undefined,
): AuthResult | Promise<AuthResult> {
  for (let i = from; i < candidates.length; i++) {
    const a = candidates[i]!
    const outcome = a.authenticate(ar)
    if (isPending(outcome)) {
      return Promise.resolve(outcome).then((o) => {
        if (o.kind === 'identity') return found(o.identity, ar)
        return tryInTurn(candidates, ar, route, i + 1, o.kind === 'deny' ? moreSpecific(refusal, o, a) : refusal)
      })
    }
    if (outcome.kind === 'identity') return found(outcome.identity, ar)
    if (outcome.kind === 'deny') refusal = moreSpecific(refusal, outcome, a)
  }
  // A body read for a refused signature is still the request's body (a report-only route forwards it).
  const denial: Refusal = refusal ?? { kind: 'deny', code: 'MISSING_CREDENTIALS', message: route.missingMessage }
  return ar.body ? { ...denial, body: ar.body } : denial
}

function found(identity: Identity, ar: AuthRequest): AuthResult {
  return ar.body ? { kind: 'identity', identity, body: ar.body } : { kind: 'identity', identity }
}

/** A more specific refusal (expired token) beats "not one of our static tokens". */
function moreSpecific(refusal: Refusal | undefined, outcome: Extract<AuthOutcome, { kind: 'deny' }>, a: Authenticator): Refusal | undefined {
  if (refusal && !(refusal.code === 'INVALID_CREDENTIALS' && outcome.code !== 'INVALID_CREDENTIALS')) return refusal
  return { kind: 'deny', code: outcome.code, ...(outcome.message ? { message: outcome.message } : {}), ...(outcome.fp ? { fp: outcome.fp } : {}), ...(outcome.claimed !== undefined ? { claimed: outcome.claimed } : {}), method: a.name }
}
