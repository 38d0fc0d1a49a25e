// Prometheus metrics (DESIGN §6), fed by the same per-decision hook as the audit log, plus the
// response tracker the pipeline calls once a request's route is known.
// Label values are bounded: the route as written in the config, codes, methods, names and fingerprints —
// never a request path, a token, a key or a signature.
import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { FastCounter, FastGauge, FastHistogram } from './series.js'
import type { AuditRecord, DecisionDetail, DecisionListener } from './audit.js'
import type { ReplayStore } from '../state/types.js'
import { VERSION } from '../version.js'

/** The `route` label of a request that matched no route (404, 400 BAD_PATH, 405). */
export const NO_ROUTE_LABEL = '(none)'

/**
 * At most this many (identity, fingerprint) series in the last-used gauge; the least recently used
 * goes first. Every JWT has its own fingerprint, so without a bound the series would grow forever.
 */
export const CREDENTIAL_SERIES_LIMIT = 1000

/** Codes that mean the credential itself was valid (the identity is authenticated), so it counts as used. */
const AUTHENTICATED_DENIALS = new Set(['FORBIDDEN', 'RATE_LIMITED', 'REPLAYED'])

/** What `trackResponse` waits on: a ServerResponse, or the socket of an upgrade ('close' = the exchange ended). */
export interface ClosingExchange {
  once(event: 'close', listener: () => void): unknown
}

export interface Metrics {
  readonly registry: Registry
  /** Registered beside the audit log: one call per request decision. */
  readonly listener: DecisionListener
  /**
   * One call per reload attempt. On `ok`, `credentials` (the fingerprints of the credentials the new config
   * names, see credential-fingerprints.ts) drops the last-used series of every credential the previous
   * config named and this one does not.
   */
  configReload(result: 'ok' | 'error', credentials?: ReadonlySet<string>): void
  /**
   * The pipeline calls this once per request, as soon as its route is known (null: none matched): the
   * request counts in `portcullis_requests_in_flight{route}` until `res` emits 'close', and then
   * `portcullis_request_duration_seconds{route,method}` observes the time since `startedAt`
   * (performance.now() at the request's arrival).
   */
  trackResponse(res: ClosingExchange, route: string | null, method: string, startedAt: number): void
  /** Prometheus text exposition (what /metrics serves). */
  text(): Promise<string>
}

export interface MetricsOptions {
  /** The replay cache whose size the `portcullis_replay_cache_entries` gauge reports at scrape time. */
  replay?: Pick<ReplayStore, 'kind' | 'size'>
  /** Default Node.js process metrics (process_*, nodejs_*); on unless false. */
  defaultMetrics?: boolean
  credentialSeriesLimit?: number
  /** Fingerprints of the credentials the config at start names (the base of the first reload's comparison). */
  credentials?: ReadonlySet<string>
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** Status codes as label values, made once. */
const STATUS_LABELS: string[] = []
function statusLabel(status: number): string {
  return (STATUS_LABELS[status] ??= String(status))
}

export function createMetrics(o: MetricsOptions = {}): Metrics {
  const registry = new Registry()
  if (o.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const requests = new FastCounter('portcullis_requests_total', 'Requests answered, by route (as written in the config), method and status.', ['route', 'method', 'status'], registry)
  const decisions = new FastCounter(
    'portcullis_auth_decisions_total',
    'Request decisions, by route, auth method, result (allow/deny/report) and reason (the error code; empty for allow).',
    ['route', 'auth_method', 'result', 'reason'],
    registry,
  )
  const rateLimited = new FastCounter(
    'portcullis_rate_limited_total',
    'Requests refused with 429, by route and what was counted (identity, ip, or authFailures for the failed-auth throttle).',
    ['route', 'by'],
    registry,
  )
  const upstreamDuration = new FastHistogram(
    'portcullis_upstream_duration_seconds',
    'Time from sending a request to its upstream until the response headers (or the failure).',
    ['upstream', 'route'],
    DURATION_BUCKETS,
    registry,
  )
  const replay = o.replay
  new Gauge({
    name: 'portcullis_replay_cache_entries',
    help: 'Entries held by the replay cache.',
    labelNames: ['store'] as const,
    registers,
    async collect() {
      if (!replay) return
      try {
        this.set({ store: replay.kind }, await replay.size())
      } catch {
        // The store is unreachable: leave the last value rather than fail the scrape.
      }
    },
  })
  const reloads = new Counter({
    name: 'portcullis_config_reloads_total',
    help: 'Configuration reloads, by result (ok/error).',
    labelNames: ['result'] as const,
    registers,
  })
  reloads.inc({ result: 'ok' }, 0)
  reloads.inc({ result: 'error' }, 0)
  const lastUsed = new FastGauge(
    'portcullis_credential_last_used_timestamp_seconds',
    'Unix time an identity last authenticated with the credential of this fingerprint (watch the old one go quiet when rotating).',
    ['identity', 'fingerprint'],
    registry,
  )

  const limit = o.credentialSeriesLimit ?? CREDENTIAL_SERIES_LIMIT
  interface CredentialSeries {
    identity: string
    fingerprint: string
    series: { value: number }
    /** The least-recently-used order, as a list threaded through the entries (no per-use allocation). */
    older: CredentialSeries | undefined
    newer: CredentialSeries | undefined
  }
  // identity → fingerprint → series; `oldest` … `newest` is the use order.
  const credentialSeries = new Map<string, Map<string, CredentialSeries>>()
  let count = 0
  let oldest: CredentialSeries | undefined
  let newest: CredentialSeries | undefined
  const unlink = (s: CredentialSeries) => {
    if (s.older) s.older.newer = s.newer
    else oldest = s.newer
    if (s.newer) s.newer.older = s.older
    else newest = s.older
    s.older = s.newer = undefined
  }
  const append = (s: CredentialSeries) => {
    s.older = newest
    if (newest) newest.newer = s
    else oldest = s
    newest = s
  }
  const drop = (s: CredentialSeries) => {
    unlink(s)
    const byFp = credentialSeries.get(s.identity)!
    byFp.delete(s.fingerprint)
    if (byFp.size === 0) credentialSeries.delete(s.identity)
    count--
    lastUsed.remove(s.identity, s.fingerprint)
  }
  const credentialUsed = (identity: string, fingerprint: string) => {
    let byFp = credentialSeries.get(identity)
    if (byFp === undefined) credentialSeries.set(identity, (byFp = new Map()))
    let s = byFp.get(fingerprint)
    if (s === undefined) {
      s = { identity, fingerprint, series: lastUsed.labels(identity, fingerprint), older: undefined, newer: undefined }
      byFp.set(fingerprint, s)
      count++
      append(s)
      if (count > limit) drop(oldest!)
    } else if (s !== newest) {
      unlink(s)
      append(s)
    }
    s.series.value = Date.now() / 1000
  }

  const requestDuration = new FastHistogram(
    'portcullis_request_duration_seconds',
    'Time from a request\'s arrival until its response ended (or the connection closed), by route and method.',
    ['route', 'method'],
    DURATION_BUCKETS,
    registry,
  )
  const inFlight = new FastGauge('portcullis_requests_in_flight', 'Requests whose route is known and whose response has not ended yet, by route.', ['route'], registry)
  new Gauge({
    name: 'portcullis_build_info',
    help: 'Always 1; the labels name the running portcullis version and Node.js version.',
    labelNames: ['version', 'node'] as const,
    registers,
  }).set({ version: VERSION, node: process.version }, 1)
  const lastReload = new Gauge({
    name: 'portcullis_config_last_reload_success_timestamp_seconds',
    help: 'Unix time the configuration in service was loaded (at start, then at each successful reload).',
    registers,
  })
  lastReload.set(Date.now() / 1000)

  const listener: DecisionListener = {
    decision(r: AuditRecord, detail?: DecisionDetail) {
      const route = r.route ?? NO_ROUTE_LABEL
      requests.labels(route, r.method ?? '', statusLabel(r.status)).value++
      const allowed = r.event === 'allow'
      const result = allowed ? 'allow' : r.event === 'report' ? 'report' : 'deny'
      decisions.labels(route, r.authMethod ?? 'none', result, allowed ? '' : (r.reason ?? '')).value++
      if (r.event === 'ratelimit') rateLimited.labels(route, detail?.limitedBy ?? 'identity').value++
      if (detail?.upstreamMs !== undefined && r.upstream) upstreamDuration.labels(r.upstream, route).observe(detail.upstreamMs / 1000)
      if (r.identity && r.fp && (allowed || AUTHENTICATED_DENIALS.has(r.reason ?? ''))) credentialUsed(r.identity, r.fp)
    },
  }

  let configured: ReadonlySet<string> = o.credentials ?? new Set()
  /** Drop the series of every credential the previous config named and the new one does not. */
  const retainCredentials = (current: ReadonlySet<string>) => {
    for (let s = oldest; s !== undefined; ) {
      const next = s.newer
      if (configured.has(s.fingerprint) && !current.has(s.fingerprint)) drop(s)
      s = next
    }
    configured = current
  }

  return {
    registry,
    listener,
    configReload(result, credentials) {
      reloads.inc({ result })
      if (result !== 'ok') return
      lastReload.set(Date.now() / 1000)
      if (credentials) retainCredentials(credentials)
    },
    trackResponse(res, route, method, startedAt) {
      const label = route ?? NO_ROUTE_LABEL
      const gauge = inFlight.labels(label)
      const histogram = requestDuration.labels(label, method)
      // Already over (the client went away while its credential was checked): no 'close' is coming.
      const done = res as { destroyed?: boolean; closed?: boolean }
      if (done.destroyed === true || done.closed === true) return histogram.observe((performance.now() - startedAt) / 1000)
      gauge.value++
      res.once('close', () => {
        gauge.value--
        histogram.observe((performance.now() - startedAt) / 1000)
      })
    },
    text: () => registry.metrics(),
  }
}
