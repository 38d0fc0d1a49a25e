// Prometheus metrics (DESIGN §6), fed by the same per-decision hook as the audit log, plus the
// response tracker the pipeline calls once a request's route is known.
// Label values are bounded: the route as written in the config, codes, methods, names and fingerprints —
// never a request path, a token, a key or a signature.
import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
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

/** A child per label combination, resolved once: prom-client hashes the label set on every labelled call. */
function childCache<C>(make: (key: string) => C): (key: string) => C {
  const children = new Map<string, C>()
  return (key) => {
    let c = children.get(key)
    if (c === undefined) children.set(key, (c = make(key)))
    return c
  }
}

export function createMetrics(o: MetricsOptions = {}): Metrics {
  const registry = new Registry()
  if (o.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const requests = new Counter({
    name: 'portcullis_requests_total',
    help: 'Requests answered, by route (as written in the config), method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  })
  const decisions = new Counter({
    name: 'portcullis_auth_decisions_total',
    help: 'Request decisions, by route, auth method, result (allow/deny/report) and reason (the error code; empty for allow).',
    labelNames: ['route', 'auth_method', 'result', 'reason'] as const,
    registers,
  })
  const rateLimited = new Counter({
    name: 'portcullis_rate_limited_total',
    help: 'Requests refused with 429, by route and what was counted (identity, ip, or authFailures for the failed-auth throttle).',
    labelNames: ['route', 'by'] as const,
    registers,
  })
  const upstreamDuration = new Histogram({
    name: 'portcullis_upstream_duration_seconds',
    help: 'Time from sending a request to its upstream until the response headers (or the failure).',
    labelNames: ['upstream', 'route'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
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
  const lastUsed = new Gauge({
    name: 'portcullis_credential_last_used_timestamp_seconds',
    help: 'Unix time an identity last authenticated with the credential of this fingerprint (watch the old one go quiet when rotating).',
    labelNames: ['identity', 'fingerprint'] as const,
    registers,
  })

  const limit = o.credentialSeriesLimit ?? CREDENTIAL_SERIES_LIMIT
  // Insertion order = least recently used first (an entry is re-inserted on every use).
  const credentialSeries = new Map<string, { identity: string; fingerprint: string }>()
  const credentialUsed = (identity: string, fingerprint: string) => {
    const key = identity + '\u0000' + fingerprint
    if (credentialSeries.has(key)) credentialSeries.delete(key)
    credentialSeries.set(key, { identity, fingerprint })
    lastUsed.set({ identity, fingerprint }, Date.now() / 1000)
    if (credentialSeries.size > limit) {
      const [oldest, labels] = credentialSeries.entries().next().value!
      credentialSeries.delete(oldest)
      lastUsed.remove(labels)
    }
  }

  const requestDuration = new Histogram({
    name: 'portcullis_request_duration_seconds',
    help: 'Time from a request\'s arrival until its response ended (or the connection closed), by route and method.',
    labelNames: ['route', 'method'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const inFlight = new Gauge({
    name: 'portcullis_requests_in_flight',
    help: 'Requests whose route is known and whose response has not ended yet, by route.',
    labelNames: ['route'] as const,
    registers,
  })
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

  const SEP = '\u0000'
  const requestsChild = childCache((k) => requests.labels(...(k.split(SEP) as [string, string, string])))
  const decisionsChild = childCache((k) => decisions.labels(...(k.split(SEP) as [string, string, string, string])))
  const rateLimitedChild = childCache((k) => rateLimited.labels(...(k.split(SEP) as [string, string])))
  const upstreamChild = childCache((k) => upstreamDuration.labels(...(k.split(SEP) as [string, string])))
  const durationChild = childCache((k) => requestDuration.labels(...(k.split(SEP) as [string, string])))
  const inFlightChild = childCache((route) => inFlight.labels(route))

  const listener: DecisionListener = {
    decision(r: AuditRecord, detail?: DecisionDetail) {
      const route = r.route ?? NO_ROUTE_LABEL
      requestsChild(route + SEP + (r.method ?? '') + SEP + r.status).inc()
      const allowed = r.event === 'allow'
      const result = allowed ? 'allow' : r.event === 'report' ? 'report' : 'deny'
      decisionsChild(route + SEP + (r.authMethod ?? 'none') + SEP + result + SEP + (allowed ? '' : (r.reason ?? ''))).inc()
      if (r.event === 'ratelimit') rateLimitedChild(route + SEP + (detail?.limitedBy ?? 'identity')).inc()
      if (detail?.upstreamMs !== undefined && r.upstream) upstreamChild(r.upstream + SEP + route).observe(detail.upstreamMs / 1000)
      if (r.identity && r.fp && (allowed || AUTHENTICATED_DENIALS.has(r.reason ?? ''))) credentialUsed(r.identity, r.fp)
    },
  }

  let configured: ReadonlySet<string> = o.credentials ?? new Set()
  /** Drop the series of every credential the previous config named and the new one does not. */
  const retainCredentials = (current: ReadonlySet<string>) => {
    for (const [key, labels] of credentialSeries) {
      if (configured.has(labels.fingerprint) && !current.has(labels.fingerprint)) {
        credentialSeries.delete(key)
        lastUsed.remove(labels)
      }
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
      const gauge = inFlightChild(label)
      const histogram = durationChild(label + SEP + method)
      // Already over (the client went away while its credential was checked): no 'close' is coming.
      const done = res as { destroyed?: boolean; closed?: boolean }
      if (done.destroyed === true || done.closed === true) return histogram.observe((performance.now() - startedAt) / 1000)
      gauge.inc()
      res.once('close', () => {
        gauge.dec()
        histogram.observe((performance.now() - startedAt) / 1000)
      })
    },
    text: () => registry.metrics(),
  }
}
