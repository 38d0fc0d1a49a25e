// The path of every request through the gateway (DESIGN §3), read top to bottom: framing → canonical
// path → route (the join endpoint first) → auth-failure throttle → authenticate → authorize → replay and
// rate limit (on a route answered from the config alone, these in one store call: steps/admit.ts) →
// forward, or answer locally. Plain requests, upgrades, CONNECT, and requests the HTTP parser
// refuses all take it, and each ends in exactly one audit line (the Exchange writes it). Each step lives
// in its own module under steps/; this file only assembles them. It never logs a credential.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { METHODS } from 'node:http'
import type { Socket } from 'node:net'
import { Exchange, isReportOnly, type Denial } from './exchange.js'
import { clientAddress } from './policy/client-address.js'
import { BodyTooLargeError, OverloadedError, hasBody, readBody, releaseBody } from './proxy/body.js'
import { isClosing, markClosing, responseReply, socketReply } from './reply.js'
import type { Runtime } from './runtime.js'
import { StoreUnavailableError } from './state/types.js'
import { normalizeAddress } from './state/client-ip.js'
import { checkFraming } from './steps/framing.js'
import { checkDeclaredSize, checkPath, findRoute } from './steps/route.js'
import { checkCredentials } from './steps/authenticate.js'
import { checkConcurrency } from './steps/limits.js'
import { isPending, then, type MaybePromise } from './maybe.js'
import { admitLocally, oneByOne } from './steps/admit.js'
import { forwardRequest, respondJoin, responseOnSocket, tunnel } from './steps/forward.js'

/**
 * Steps 0–5: the decision. true = forward (the exchange holds route, identity and body); false = refused
 * and answered. On an `enforce: report` route a refusal of steps 3–5 is recorded, not sent (DESIGN §3.2).
 * Synchronous when every step is (a bearer request in memory mode): no promise is made then.
 */
function decide(x: Exchange, req: IncomingMessage, upgrade: boolean): MaybePromise<boolean> {
  let denial: MaybePromise<Denial | undefined>
  try {
    // Always enforced: framing, path, route, method, declared body size.
    const early = checkFraming(req, upgrade) ?? checkPath(x, req) ?? findRoute(x) ?? checkDeclaredSize(x, req)
    // In flight on its route (or on none) until the response or tunnel closes; then its duration.
    x.rt.trackResponse?.(x, x.route?.id ?? null, x.method ?? '', x.start)
    if (early) return refuse(x, early)
    denial = authorize(x, req, upgrade)
  } catch (err) {
    return failed(x, req, err)
  }
  if (isPending(denial)) return Promise.resolve(denial).then((d) => concluded(x, d), (err: unknown) => failed(x, req, err))
  return concluded(x, denial)
}

/** Steps 3–5, then the body an assertion will bind. */
function authorize(x: Exchange, req: IncomingMessage, upgrade: boolean): MaybePromise<Denial | undefined> {
  const route = x.route!
  const steps = route.upstream !== null && route.admitsLocally ? admitLocally(x, req, route) : oneByOne(x, () => checkCredentials(x, req))
  return then(steps, (d) => d ?? checkConcurrency(x, x) ?? readAssertedBody(x, req, upgrade))
}

/** After steps 3–5: forward, refuse, or (report-only) forward with the refusal recorded. */
function concluded(x: Exchange, denial: Denial | undefined): boolean {
  if (!denial) return !x.done
  if (!isReportOnly(x.route)) return refuse(x, denial)
  x.wouldRefuse = denial
  return !x.done
}

/** A step threw: the client's or the store's failure gets its code (the store's may be report-only), anything else is a 500. */
function failed(x: Exchange, req: IncomingMessage, err: unknown): boolean {
  const denial = expectedFailure(err, req)
  if (!denial) {
    x.internal(err)
    return false
  }
  if (denial.code !== 'STATE_UNAVAILABLE') return refuse(x, denial) // body size and buffer: always enforced
  return concluded(x, denial)
}

function refuse(x: Exchange, denial: Denial): false {
  x.refuse(denial)
  return false
}

/** The assertion's `cdg` binds the body: read it (bounded by bodyLimit) whenever one will be signed. */
function readAssertedBody(x: Exchange, req: IncomingMessage, upgrade: boolean): MaybePromise<undefined> {
  if (!(x.identity && !x.wouldRefuse && !x.body && !upgrade && x.rt.assert && x.gw.forward.assertion && hasBody(req))) return undefined
  return readBody(req, x.gw.server.bodyLimit, x.gw.server.bufferLimit).then((body) => {
    x.body = body
    return undefined
  })
}

/** Failures that are the client's or the store's, not the gateway's: each has its contract code. */
function expectedFailure(err: unknown, req: IncomingMessage): Denial | undefined {
  if (err instanceof BodyTooLargeError) return { code: 'BODY_TOO_LARGE', close: true }
  if (err instanceof OverloadedError) return { code: 'OVERLOADED', close: true }
  if (err instanceof StoreUnavailableError) return { code: 'STATE_UNAVAILABLE' }
  // The client went away while its body was being read.
  if (req.destroyed) return { code: 'BAD_REQUEST', message: 'Request body incomplete', close: true }
  return undefined
}

/** Step 6 for an allowed request: the join endpoint answers itself, every other route forwards. */
function answer(x: Exchange, req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
  const route = x.route!
  if (route.upstream !== null) return forwardRequest(x, req, res, route)
  respondJoin(x, route, res)
  return undefined
}

const kExchange = Symbol('portcullis.exchange')
const kLatest = Symbol('portcullis.latest')
type Tracked = IncomingMessage & { [kExchange]?: Exchange }
type Connection = Socket & { [kLatest]?: ServerResponse }

/**
 * Pipelined requests are decided one at a time, each after the previous response ended: a request queued
 * behind a response sent with `Connection: close` is never authorized or forwarded (DESIGN §3 step 0).
 * The connection remembers its latest response; a request waits only when that one has not ended yet.
 */
function connectionTurn(req: IncomingMessage, res: ServerResponse): Promise<boolean> | boolean {
  const socket = req.socket as Connection
  if (isClosing(socket)) return false
  const previous = socket[kLatest]
  socket[kLatest] = res
  if (previous === undefined || previous.writableFinished || previous.destroyed) return true
  return new Promise<boolean>((resolve) => {
    const go = () => {
      previous.off('finish', go)
      previous.off('close', go)
      resolve(!isClosing(socket) && !socket.destroyed)
    }
    previous.once('finish', go)
    previous.once('close', go)
  })
}

/** An ordinary request: `request` (and `checkExpectation`) of the HTTP server. */
export async function handleRequest(rt: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const turn = connectionTurn(req, res)
  if (turn !== true && !(await turn)) return void req.resume()
  const x = new Exchange(rt, req, responseReply(res), clientAddress(req, rt.gateway))
  ;(req as Tracked)[kExchange] = x
  // Bodies held for this request leave server.bufferLimit's count when its response is over.
  res.once('close', () => {
    releaseBody(req)
    x.close()
  })
  try {
    const go = decide(x, req, false)
    if (isPending(go) ? await go : go) await answer(x, req, res)
  } catch (err) {
    x.internal(err)
  }
}

/**
 * A request that owns its socket: an upgrade or a CONNECT. Only an upgrade on a `websocket: true` route
 * is tunnelled; any other is answered as an ordinary request with the upgrade dropped.
 */
export async function handleSocketRequest(rt: Runtime, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  socket.on('error', () => socket.destroy())
  const x = new Exchange(rt, req, socketReply(socket), clientAddress(req, rt.gateway))
  ;(req as Tracked)[kExchange] = x
  socket.once('close', () => {
    releaseBody(req)
    x.close()
  })
  try {
    if (!(await decide(x, req, true))) return
    const route = x.route!
    if (route.upstream !== null && route.websocket) return await tunnel(x, req, socket, head, route)
    await answer(x, req, responseOnSocket(req, socket))
  } catch (err) {
    x.internal(err)
  }
}

/** The HTTP parser refused a request (its framing, its target, or its time ran out): `clientError`. */
export function handleClientError(rt: Runtime, err: NodeJS.ErrnoException & { rawPacket?: unknown; bytesParsed?: number }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return void socket.destroy()
  const code = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : err.code === 'HPE_INVALID_URL' ? 'BAD_PATH' : 'BAD_REQUEST'
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  const inFlight = pending?.req ? (pending.req as Tracked)[kExchange] : undefined
  if (pending && !pending.req.complete) {
    // The request already handed to the pipeline broke off (its body's framing, or its time ran out): its
    // exchange answers, unless its response already started; then the connection can only be cut.
    if (inFlight && !inFlight.done && !pending.headersSent) inFlight.refuse({ code, close: true, ...(code === 'BAD_REQUEST' ? { message: 'Request body incomplete' } : {}) })
    else socket.destroy()
    return
  }
  // The same, after that request's answer was sent in full (a 401 before its body was read): the failure
  // is in its body, already answered and audited — not a request of its own.
  const latest = (socket as Connection)[kLatest]
  if (!pending && latest !== undefined && !latest.req.complete) return void socket.destroy()
  // A request of its own: alone on the connection, or pipelined behind complete ones still being answered
  // (its answer then waits for theirs, and nothing after it is read).
  markClosing(socket)
  const x = new Exchange(rt, null, socketReply(socket), normalizeAddress(socket.remoteAddress ?? ''), refusedRequestLine(err.rawPacket, err.bytesParsed))
  if (!pending) return x.refuse({ code, close: true })
  const answer = () => x.refuse({ code, close: true })
  if (pending.writableFinished || pending.destroyed) return answer()
  pending.once('finish', answer)
  pending.once('close', answer)
}

/**
 * Method and path (query cut) of the request line the parser refused, as far as it got; null when unknown.
 * `raw` is the chunk the parser was reading and `at` where it failed: a request pipelined behind others
 * starts after the last blank line before that point.
 */
export function refusedRequestLine(raw: unknown, at?: number): { method: string | null; path: string | null } {
  if (!Buffer.isBuffer(raw)) return { method: null, path: null }
  const failedAt = Math.min(raw.length, at ?? raw.length)
  const blank = raw.lastIndexOf('\r\n\r\n', Math.max(0, failedAt - 1))
  const start = blank === -1 || blank + 4 > failedAt ? 0 : blank + 4
  const text = raw.subarray(start, start + 8192).toString('latin1')
  const end = text.search(/[\r\n]/)
  const line = end === -1 ? text : text.slice(0, end)
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.*?)(?: HTTP\/[0-9]\.[0-9])?$/.exec(line)
  if (!m) return { method: null, path: null }
  const target = m[2]!
  const q = target.indexOf('?')
  // Only a method Node knows: the method is a metric label, and its values must stay bounded.
  return { method: METHODS.includes(m[1]!) ? m[1]! : null, path: q === -1 ? target : target.slice(0, q) }
}
