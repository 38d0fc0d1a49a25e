// The path of every request through the gateway, in order (DESIGN §3):
// canonical path → route → authenticate → authorize → replay and rate limit → forward → audit.
// Each step lives in its own module; this file only assembles them. It never logs a credential.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { ERRORS, errorBody, type ErrorCode } from './errors.js'
import { splitCanonicalTarget } from './policy/canonical-path.js'
import { matchRoute } from './policy/routes.js'
import { hasValidHost } from './policy/framing.js'
import type { CompiledRoute, Gateway } from './config/compile.js'
import { authenticate } from './auth/authenticate.js'
import type { Identity } from './auth/types.js'
import { BodyTooLargeError, hasBody, readBody } from './proxy/body.js'
import { forwardHeaders } from './proxy/headers.js'
import type { UpstreamPools } from './proxy/forward.js'
import { tunnelUpgrade } from './proxy/websocket.js'
import type { AuditEvent, AuditRecord, DecisionDetail, DecisionListener } from './observe/audit.js'
import { countAuthFailure, checkAuthFailures, countRequest, type GatewayState, type LimitHeaders } from './policy/limits.js'
import { StoreUnavailableError } from './state/types.js'
import { clientAddress } from './policy/client-address.js'
import { isJoinRequest, serveJoin } from './auth/join.js'

/** Everything a request needs; `gateway` is swapped whole on reload, the rest lives as long as the process. */
export interface Runtime {
  gateway: Gateway
  state: GatewayState
  pools: UpstreamPools
  listeners: DecisionListener[]
  tls: boolean
  newRequestId(): string
  /** Extra headers bound to this request (the signed assertion), set after all stripping. */
  assert?: (gw: Gateway, a: { identity: Identity; route: CompiledRoute; method: string; target: string; body?: Buffer; reqId: string }) => Promise<Record<string, string>>
}

type Verdict =
  | {
      ok: false
      code: ErrorCode
      message?: string
      event: AuditEvent
      headers?: OutgoingHttpHeaders
      route?: CompiledRoute
      identity?: string
      claimed?: string
      authMethod?: string
      fp?: string
      limitedBy?: DecisionDetail['limitedBy']
    }
  | { ok: true; route: CompiledRoute; identity?: Identity; body?: Buffer; target: string; limitHeaders?: LimitHeaders }

/** One request's bookkeeping: the config it started with, its id, clock start and client address. */
export interface Exchange {
  gw: Gateway
  reqId: string
  start: number
  ip: string
  method: string
  path: string
}

function deny(code: ErrorCode, extra: Partial<Extract<Verdict, { ok: false }>> = {}): Verdict {
  const event: AuditEvent = code === 'RATE_LIMITED' ? 'ratelimit' : code === 'REPLAYED' ? 'replay' : 'deny'
  return { ok: false, code, event, ...extra }
}

async function decide(rt: Runtime, x: Exchange, req: IncomingMessage): Promise<Verdict> {
  const gw = x.gw
  if (!hasValidHost(req)) return deny('BAD_REQUEST', { message: 'Exactly one Host header is required' })
  const target = splitCanonicalTarget(req.url ?? '')
  if (!target.ok) return deny('BAD_PATH')
  x.path = target.path
  const match = matchRoute(gw.routes, x.method, target.path)
  if (match.kind === 'none') return deny('NO_ROUTE')
  if (match.kind === 'method') return deny('METHOD_NOT_ALLOWED', { headers: { allow: match.allow.join(', ') } })
  const route = match.route

  const cl = req.headers['content-length']
  if (cl !== undefined && Number(cl) > gw.server.bodyLimit) return deny('BODY_TOO_LARGE', { route, headers: { connection: 'close' } })

  // Who was authenticated, for the audit line of a refusal that comes later (a store failure, a body too large).
  let who: { identity: string; authMethod: string; fp: string } | undefined
  try {
    // The auth-failure throttle is read from the store while the credential is being checked, so that
    // round trip overlaps the crypto; a throttled address still gets its 429 before any other answer.
    const throttledRead = checkAuthFailures(rt.state, gw, x.ip)
    throttledRead.catch(() => undefined) // awaited below; this only keeps an early return from leaving it unhandled
    let identity: Identity | undefined
    let body: Buffer | undefined
    if (route.public) {
      const throttled = await throttledRead
      if (throttled) return deny('RATE_LIMITED', { route, headers: throttled, limitedBy: 'authFailures' })
    } else {
      const auth = await authenticate(gw, route, req, { path: target.path, query: target.query, tls: rt.tls, now: Date.now(), readBody: () => readBody(req, gw.server.bodyLimit) })
      const throttled = await throttledRead
      if (throttled) return deny('RATE_LIMITED', { route, headers: throttled, limitedBy: 'authFailures' })
      if (auth.kind === 'deny') {
        const headers = auth.code === 'MISSING_CREDENTIALS' && route.challenge ? { 'www-authenticate': route.challenge } : undefined
        if (ERRORS[auth.code].status === 401) await countAuthFailure(rt.state, gw, x.ip)
        return deny(auth.code, { route, ...(auth.message ? { message: auth.message } : {}), ...(headers ? { headers } : {}), ...(auth.fp ? { fp: auth.fp } : {}), ...(auth.claimed !== undefined ? { claimed: auth.claimed } : {}), ...(auth.method ? { authMethod: auth.method } : {}) })
      }
      identity = auth.identity
      body = auth.body
      who = { identity: identity.name, authMethod: identity.method, fp: identity.fp }
      if (route.roles && identity.method !== 'loopback' && !identity.roles.some((r) => route.roles!.has(r))) return deny('FORBIDDEN', { route, ...who })
    }
    // Replay check and rate-limit count are independent store calls: both go out at once.
    const [fresh, limit] = await Promise.all([
      identity?.replay ? rt.state.replay.remember(identity.replay.key, identity.replay.ttlMs) : true,
      countRequest(rt.state, route, identity, x.ip),
    ])
    if (!fresh) return deny('REPLAYED', { route, identity: identity!.name, authMethod: identity!.method, fp: identity!.fp })
    if (limit && !limit.ok) {
      return deny('RATE_LIMITED', { route, headers: limit.headers, ...(route.rateLimit ? { limitedBy: route.rateLimit.by } : {}), ...(identity ? { identity: identity.name, authMethod: identity.method, fp: identity.fp } : {}) })
    }
    // The assertion's cdg binds the body: read it (bounded by bodyLimit) whenever one will be signed.
    if (identity && !body && rt.assert && gw.forward.assertion && hasBody(req) && req.headers.upgrade === undefined) body = await readBody(req, gw.server.bodyLimit)
    return { ok: true, route, ...(identity ? { identity } : {}), ...(body ? { body } : {}), target: target.path + target.query, ...(limit ? { limitHeaders: limit.headers } : {}) }
  } catch (err) {
    if (err instanceof BodyTooLargeError) return deny('BODY_TOO_LARGE', { route, headers: { connection: 'close' }, ...who })
    if (err instanceof StoreUnavailableError) return deny('STATE_UNAVAILABLE', { route, ...who })
    // The client went away while its body was being read, or the parser refused the body's framing:
    // its request, not the store, failed.
    if (req.destroyed || parserRefused.has(req)) return deny('BAD_REQUEST', { route, message: 'Request body incomplete', ...who })
    throw err
  }
}

function audit(rt: Runtime, x: Exchange, v: Verdict, status: number, reason: string | null, detail?: DecisionDetail): void {
  const route = v.route ?? null
  const identity = v.ok ? v.identity : undefined
  const record: AuditRecord = {
    event: v.ok ? 'allow' : v.event,
    reqId: x.reqId,
    method: x.method,
    path: x.path,
    route: route ? route.id : null,
    identity: identity ? identity.name : v.ok ? (route?.public ? 'anonymous' : null) : (v.identity ?? null),
    claimed: v.ok ? null : (v.claimed ?? null),
    authMethod: identity ? identity.method : v.ok ? (route?.public ? 'public' : null) : (v.authMethod ?? null),
    fp: identity ? identity.fp || null : v.ok ? null : (v.fp || null),
    reason,
    ip: x.ip,
    status,
    upstream: route ? route.upstream.name : null,
    ms: Math.round((performance.now() - x.start) * 100) / 100,
  }
  const d = detail ?? (!v.ok && v.limitedBy ? { limitedBy: v.limitedBy } : undefined)
  for (const l of rt.listeners) l.decision(record, d)
}

export function sendError(res: ServerResponse, code: ErrorCode, reqId: string, message?: string, headers?: OutgoingHttpHeaders): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = errorBody(code, reqId, message)
  res.writeHead(ERRORS[code].status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': reqId, ...headers })
  res.end(body)
}

// Kept on the request itself (symbol keys): a WeakMap entry per request costs measurably more under GC.
const kRequestId = Symbol('portcullis.requestId')
const kParserRefused = Symbol('portcullis.parserRefused')
type Tracked = IncomingMessage & { [kRequestId]?: string; [kParserRefused]?: ErrorCode }
/** Requests already handed to the pipeline whose framing the HTTP parser then refused (server.ts answered 400). */
const parserRefused = { has: (req: IncomingMessage) => (req as Tracked)[kParserRefused] !== undefined, get: (req: IncomingMessage) => (req as Tracked)[kParserRefused] }

/**
 * The HTTP parser refused the rest of a request the pipeline is already working on, and server.ts answered
 * it 400 itself: the pipeline's own answer can no longer reach the client, and its audit line must say so.
 * Returns the request's id (for that 400's body), if the pipeline has seen the request.
 */
export function refusedInFlight(req: IncomingMessage, code: ErrorCode): string | undefined {
  ;(req as Tracked)[kParserRefused] = code
  return (req as Tracked)[kRequestId]
}

/** The decision as the client saw it once the parser's 400 went out first. */
function asRefused(v: Verdict, code: ErrorCode): Verdict {
  if (!v.ok) return { ...v, code, event: 'deny', headers: undefined }
  return deny(code, { route: v.route, ...(v.identity ? { identity: v.identity.name, authMethod: v.identity.method, fp: v.identity.fp } : {}) })
}

function exchange(rt: Runtime, req: IncomingMessage): Exchange {
  const gw = rt.gateway
  const url = req.url ?? ''
  const q = url.indexOf('?')
  const reqId = rt.newRequestId()
  ;(req as Tracked)[kRequestId] = reqId
  return { gw, reqId, start: performance.now(), ip: clientAddress(req, gw), method: req.method ?? 'GET', path: q === -1 ? url : url.slice(0, q) }
}

/** Refuse a request before the pipeline looks at it (server.ts's upgrade fallback), with its audit line. */
export function refuseRequest(rt: Runtime, req: IncomingMessage, res: ServerResponse, code: ErrorCode, message: string): void {
  const x = exchange(rt, req)
  const v = deny(code, { message })
  sendError(res, code, x.reqId, message)
  audit(rt, x, v, ERRORS[code].status, code)
}

/** An ordinary HTTP request (an Upgrade on a route without `websocket: true` also lands here). */
export async function handleRequest(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const x = exchange(rt, req)
  // DESIGN §4.7: the join path (canonical, exactly as configured) needs no route and is never forwarded.
  if (x.gw.join && isJoinRequest(x.gw.join, req)) return serveJoin(rt, x, req, res, x.gw.join)
  let v: Verdict
  try {
    v = await decide(rt, x, req)
  } catch {
    // An unexpected failure in a store or authenticator: fail closed, never crash the process.
    v = deny('STATE_UNAVAILABLE')
  }
  const refused = parserRefused.get(req)
  if (refused) return audit(rt, x, asRefused(v, refused), ERRORS[refused].status, refused)
  if (!v.ok) {
    sendError(res, v.code, x.reqId, v.message, v.headers)
    audit(rt, x, v, ERRORS[v.code].status, v.code)
    return
  }
  const { route, identity } = v
  const extra = identity && rt.assert ? await rt.assert(x.gw, { identity, route, method: x.method, target: v.target, ...(v.body ? { body: v.body } : {}), reqId: x.reqId }) : undefined
  const headers = forwardHeaders(req.headers, {
    strip: route.credentials === 'strip' ? stripSet(x.gw) : null,
    ...(identity ? { identity } : {}),
    setIdentityHeaders: route.identityHeaders,
    upgrade: false,
    host: hostOf(route.upstream.origin),
    forwardedFor: x.ip,
    proto: rt.tls ? 'https' : 'http',
    ...(extra ? { extra } : {}),
  })
  if (v.body) {
    headers['content-length'] = String(v.body.length)
    delete headers['transfer-encoding']
  }
  const sentAt = performance.now()
  const result = await rt.pools.forward(
    { upstream: route.upstream, method: x.method, target: v.target, headers, ...(v.body ? { body: v.body } : {}), req, bodyLimit: x.gw.server.bodyLimit },
    res,
    (status, out) => {
      out['x-request-id'] = x.reqId
      if (v.limitHeaders) Object.assign(out, v.limitHeaders)
      audit(rt, x, v, status, null, { upstreamMs: performance.now() - sentAt })
    },
  )
  if (result.error) {
    const refused = parserRefused.get(req)
    if (refused && !result.started) audit(rt, x, asRefused(v, refused), ERRORS[refused].status, refused, { upstreamMs: performance.now() - sentAt })
    else if (!result.started) {
      sendError(res, result.error, x.reqId)
      audit(rt, x, v, ERRORS[result.error].status, result.error, { upstreamMs: performance.now() - sentAt })
    } else res.destroy()
  }
}

/** A request with `Connection: upgrade`. Only a `websocket: true` route tunnels it; others get the normal path. */
export async function handleUpgrade(rt: Runtime, req: IncomingMessage, socket: Socket, head: Buffer, fallback: () => void): Promise<void> {
  // Routing is pure, so look first: a route without `websocket: true` treats this as a plain request.
  const target = splitCanonicalTarget(req.url ?? '')
  if (target.ok) {
    const m = matchRoute(rt.gateway.routes, req.method ?? 'GET', target.path)
    if (m.kind !== 'route' || !m.route.websocket) return fallback()
  } else return fallback()
  const x = exchange(rt, req)
  let v: Verdict
  try {
    v = await decide(rt, x, req)
  } catch {
    v = deny('STATE_UNAVAILABLE')
  }
  if (!v.ok) {
    const status = ERRORS[v.code].status
    const body = errorBody(v.code, x.reqId, v.message)
    const extra = Object.entries(v.headers ?? {}).map(([k, val]) => `${k}: ${String(val)}\r\n`).join('')
    socket.end(`HTTP/1.1 ${status} ${httpReason(status)}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${x.reqId}\r\n${extra}connection: close\r\n\r\n${body}`)
    audit(rt, x, v, status, v.code)
    return
  }
  const { route, identity } = v
  const extra = identity && rt.assert ? await rt.assert(x.gw, { identity, route, method: x.method, target: v.target, reqId: x.reqId }) : undefined
  const headers = forwardHeaders(req.headers, {
    strip: route.credentials === 'strip' ? stripSet(x.gw) : null,
    ...(identity ? { identity } : {}),
    setIdentityHeaders: route.identityHeaders,
    upgrade: true,
    host: hostOf(route.upstream.origin),
    forwardedFor: x.ip,
    proto: rt.tls ? 'https' : 'http',
    ...(extra ? { extra } : {}),
  })
  const status = await tunnelUpgrade({ upstream: route.upstream, method: x.method, target: v.target, headers, socket, head })
  if (typeof status === 'number') audit(rt, x, v, status, null)
  else {
    const s = ERRORS[status].status
    const body = errorBody(status, x.reqId)
    socket.end(`HTTP/1.1 ${s} ${httpReason(s)}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
    audit(rt, x, v, s, status)
  }
}

function httpReason(status: number): string {
  return { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 429: 'Too Many Requests', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' }[status] ?? 'Error'
}

const stripSets = new WeakMap<Gateway, ReadonlySet<string>>()
function stripSet(gw: Gateway): ReadonlySet<string> {
  let s = stripSets.get(gw)
  if (!s) stripSets.set(gw, (s = new Set(gw.credentialHeaders)))
  return s
}

const hosts = new Map<string, string>()
function hostOf(origin: string): string {
  let h = hosts.get(origin)
  if (h === undefined) hosts.set(origin, (h = new URL(origin).host))
  return h
}
