// Steps 3 and 4 (DESIGN §3): the auth-failure throttle answers before any credential is looked at or any
// body read; then the route's methods authenticate (auth/authenticate.ts), a 401 counts against the
// client address, and the identity's roles (and a UCAN's command) are checked against the route's.
import type { IncomingMessage } from 'node:http'
import { authenticate, type AuthResult } from '../auth/authenticate.js'
import type { Identity } from '../auth/types.js'
import { rolesAllow } from '../auth/claims.js'
import { ERRORS } from '../errors.js'
import { isReportOnly, type Denial, type Exchange, type MatchedRoute } from '../exchange.js'
import { checkAuthFailures, countAuthFailure } from '../policy/limits.js'
import { readBody } from '../proxy/body.js'
import { strictClientIp } from '../state/client-ip.js'
import { then, type MaybePromise } from '../maybe.js'

export function checkThrottle(x: Exchange): MaybePromise<Denial | undefined> {
  return then(checkAuthFailures(x.rt.state, x.gw, x.ip), (throttled) => (throttled ? { code: 'RATE_LIMITED', headers: throttled, limitedBy: 'authFailures' } : undefined))
}

export function checkCredentials(x: Exchange, req: IncomingMessage): MaybePromise<Denial | undefined> {
  if (x.route!.public) return undefined
  return then(authenticateRequest(x, req), (auth) => settleCredentials(x, auth))
}

/** The route's methods on this request: an identity or a refusal, not yet acted on. */
export function authenticateRequest(x: Exchange, req: IncomingMessage): MaybePromise<AuthResult> {
  const route = x.route!
  return authenticate(x.gw, route, req, {
    path: x.path!,
    query: x.query,
    tls: x.rt.tls,
    now: Date.now(),
    // loopback: allow: the socket peer and the client it stands for must both be loopback (DESIGN §3.3).
    clientIp: route.loopbackAllow ? (strictClientIp(req, x.gw.server.trusted) ?? '') : x.ip,
    readBody: () => readBody(req, x.gw.server.bodyLimit, x.gw.server.bufferLimit),
  })
}

/** Act on an authentication result: the exchange takes the identity (and body), or a 401 is counted and refused. */
export function settleCredentials(x: Exchange, auth: AuthResult): MaybePromise<Denial | undefined> {
  const route = x.route!
  if (auth.kind === 'identity') {
    x.identity = auth.identity
    if (auth.body) x.body = auth.body
    return undefined
  }
  if (auth.body) x.body = auth.body
  const denial = refusalOf(route, auth)
  // A report-only route forwards the request anyway: its would-be 401 must not lock the address out of
  // the routes that do enforce (DESIGN §3.2 — report mode changes nothing a client sees).
  if (ERRORS[auth.code].status === 401 && !isReportOnly(route)) return then(countAuthFailure(x.rt.state, x.gw, x.ip), () => denial)
  return denial
}

function refusalOf(route: MatchedRoute, auth: Extract<AuthResult, { kind: 'deny' }>): Denial {
  return {
    code: auth.code,
    ...(auth.message ? { message: auth.message } : {}),
    ...(auth.code === 'MISSING_CREDENTIALS' && route.challenge ? { headers: { 'www-authenticate': route.challenge } } : {}),
    ...(auth.fp ? { fp: auth.fp } : {}),
    ...(auth.method ? { authMethod: auth.method } : {}),
    ...(auth.claimed !== undefined ? { claimed: auth.claimed } : {}),
  }
}

export function checkRoles(x: Exchange): Denial | undefined {
  return x.identity ? rolesDenial(x.route!, x.identity) : undefined
}

/** The identity's roles (and a UCAN's command) against the route's: a 403, or undefined when allowed. */
export function rolesDenial(route: MatchedRoute, identity: Identity): Denial | undefined {
  if (identity.method === 'loopback') return undefined
  // A role, or a role with the claims a `{role, claims}` entry requires (DESIGN §4.9).
  if (route.roles && !rolesAllow(route.roles, identity)) return { code: 'FORBIDDEN' }
  // A UCAN invocation's command and its delegations' policies against this route (DESIGN §4.8).
  if (identity.authorize && route.upstream !== null && !identity.authorize(route)) return { code: 'FORBIDDEN' }
  return undefined
}
