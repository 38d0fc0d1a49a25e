// One request's life in the gateway: its id, clock, client address, what was decided so far, the reply
// writer, and exactly one audit line — written by whichever of `refuse`, `allowed` or `failed` comes
// first; every later call is ignored, so no path can answer twice or log twice. Never logs a credential.
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { CompiledRoute, Gateway, JoinRoute } from './config/compile.js'
import type { Identity } from './auth/types.js'
import { ERRORS, errorBody, type ErrorCode } from './errors.js'
import type { AuditEvent, AuditRecord, DecisionDetail } from './observe/audit.js'
import type { LimitHeaders } from './policy/limits.js'
import type { Reply } from './reply.js'
import type { Runtime } from './runtime.js'
import type { RequestSpan } from './observe/tracing.js'

/** DESIGN §3.2: a route whose refusals of steps 3–5 are logged, not sent. The join endpoint always enforces. */
export function isReportOnly(route: MatchedRoute | undefined): boolean {
  return route !== undefined && route.upstream !== null && route.enforce === 'report'
}

/** A matched route: one that forwards to an upstream, or the join endpoint, which answers itself. */
export type MatchedRoute = CompiledRoute | JoinRoute

/** A refusal decided by a step. `fp`, `authMethod` and `claimed` describe a credential that was refused. */
export interface Denial {
  code: ErrorCode
  message?: string
  headers?: OutgoingHttpHeaders
  /** End the connection after the answer (413: the body was not read). */
  close?: boolean
  fp?: string
  authMethod?: string
  /** A name the client claimed on a refused credential: logged as `claimed`, never as `identity`. */
  claimed?: string
  limitedBy?: DecisionDetail['limitedBy']
}

function eventOf(code: ErrorCode): AuditEvent {
  return code === 'RATE_LIMITED' ? 'ratelimit' : code === 'REPLAYED' ? 'replay' : 'deny'
}

export class Exchange {
  readonly reqId: string
  readonly start = performance.now()
  /** The config this request started with; a reload never changes it mid-request. */
  readonly gw: Gateway
  /** null only for a request the HTTP parser refused before its request line could be read. */
  method: string | null
  path: string | null
  /** The query string as received, including `?`, or ''. */
  query = ''
  route?: MatchedRoute
  /** Set once a credential was verified (or the loopback rule admitted the request). */
  identity?: Identity
  /** A verified body (signature checks, the assertion's digest): exactly what is forwarded. */
  body?: Buffer
  limitHeaders?: LimitHeaders
  /** On an `enforce: report` route: the refusal steps 3–5 decided, not sent (DESIGN §3.2). */
  wouldRefuse?: Denial
  /** This request's trace span, when tracing is on: ended with the audit line. */
  readonly span: RequestSpan | undefined
  private settled = false
  /** Listeners for the end of the exchange (its response or socket closed): see `once`. */
  private endListeners: (() => void)[] | undefined
  private ended = false

  constructor(
    readonly rt: Runtime,
    readonly req: IncomingMessage | null,
    readonly reply: Reply,
    readonly ip: string,
    requestLine?: { method: string | null; path: string | null },
  ) {
    this.gw = rt.gateway
    this.reqId = rt.newRequestId()
    this.span = rt.tracer?.start(req?.headers)
    if (requestLine) {
      this.method = requestLine.method
      this.path = requestLine.path
    } else {
      const url = req?.url ?? ''
      const q = url.indexOf('?')
      this.method = req?.method ?? null
      this.path = q === -1 ? url : url.slice(0, q)
    }
  }

  get done(): boolean {
    return this.settled
  }

  /**
   * The exchange as a Lifetime (policy/concurrency.ts): 'close' once its response or socket closed. One
   * listener on the response serves them all (the pipeline calls `close`), instead of one each.
   */
  once(_event: 'close', listener: () => void): this {
    if (!this.ended) (this.endListeners ??= []).push(listener)
    return this
  }

  /** true once the response or socket closed (a listener added then is never called). */
  get closed(): boolean {
    return this.ended
  }

  /** The response or socket closed: the pipeline's one 'close' listener calls this. */
  close(): void {
    if (this.ended) return
    this.ended = true
    const listeners = this.endListeners
    this.endListeners = undefined
    if (listeners) for (const l of listeners) l()
  }

  /** The path and query exactly as received: what the policy matched and what is forwarded. */
  get target(): string {
    return (this.path ?? '') + this.query
  }

  /** Answer with a contract error and write the audit line. */
  refuse(d: Denial, detail?: DecisionDetail): void {
    if (this.settled) return
    const status = ERRORS[d.code].status
    this.reply.json(status, errorBody(d.code, this.reqId, d.message), { 'x-request-id': this.reqId, ...d.headers }, d.close === true)
    this.record(eventOf(d.code), status, d.code, d, detail ?? (d.limitedBy ? { limitedBy: d.limitedBy } : undefined))
  }

  /** The request was allowed and answered with `status` (by the upstream, or by the join endpoint). */
  allowed(status: number, detail?: DecisionDetail): void {
    if (this.settled) return
    const would = this.wouldRefuse
    if (would) this.record('report', status, would.code, would, detail)
    else this.record('allow', status, null, undefined, detail)
  }

  /** Allowed, but the upstream did not answer: a gateway error rather than a refusal. */
  failed(code: ErrorCode, detail?: DecisionDetail): void {
    if (this.settled) return
    const status = ERRORS[code].status
    this.reply.json(status, errorBody(code, this.reqId), { 'x-request-id': this.reqId }, false)
    const would = this.wouldRefuse
    if (would) this.record('report', status, would.code, would, detail)
    else this.record('allow', status, code, undefined, detail)
  }

  /** A failure inside the gateway: 500 INTERNAL, logged with its stack under the request id (DESIGN §3). */
  internal(err: unknown): void {
    // pino's err serializer names the class (type), message and stack of a real Error.
    this.rt.logger.error({ reqId: this.reqId, err: err instanceof Error ? err : new Error(String(err)) }, 'internal error')
    if (this.settled) return
    this.refuse({ code: 'INTERNAL', close: true })
  }

  private record(event: AuditEvent, status: number, reason: ErrorCode | null, d: Denial | undefined, detail: DecisionDetail | undefined): void {
    this.settled = true
    const route = this.route
    const id = this.identity
    const anonymous = event === 'allow' && !id && route?.public === true
    const record: AuditRecord = {
      event,
      reqId: this.reqId,
      method: this.method,
      path: this.path,
      route: route ? route.id : null,
      identity: id ? id.name : anonymous ? 'anonymous' : null,
      authMethod: id ? id.method : anonymous ? 'public' : (d?.authMethod ?? null),
      fp: id ? id.fp || null : (d?.fp ?? null),
      reason,
      ip: this.ip,
      status,
      upstream: route?.upstream ? route.upstream.name : null,
      ms: Math.round((performance.now() - this.start) * 100) / 100,
    }
    record.claimed = !id && d?.claimed !== undefined ? d.claimed : null
    for (const l of this.rt.listeners) l.decision(record, detail)
    this.span?.end(record)
  }
}
