// Prometheus metrics (DESIGN §6), fed by the same per-decision hook as the audit log.
// Label values are bounded: the route as written in the config, codes, methods, names and fingerprints —
// never a request path, a token, a key or a signature.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AuditRecord, DecisionDetail, DecisionListener } from './audit.js'
import type { ReplayStore } from '../state/types.js'

/** The `route` label of a request that matched no route (404, 400 BAD_PATH, 405). */
export const NO_ROUTE_LABEL = '(none)'

/**
 * At most this many (identity, fingerprint) series in the last-used gauge; the least recently used
 * goes first. Every JWT has its own fingerprint, so without a bound the series would grow forever.
 */
export const CREDENTIAL_SERIES_LIMIT = 1000

/** Codes that mean the credential itself was valid (the identity is authenticated), so it counts as used. */
const AUTHENTICATED_DENIALS = new Set(['FORBIDDEN', 'RATE_LIMITED', 'REPLAYED'])

export interface Metrics {
  readonly registry: Registry
  /** Registered beside the audit log: one call per request decision. */
  readonly listener: DecisionListener
  configReload(result: 'ok' | 'error'): void
  /** Prometheus text exposition (what /metrics serves). */
  text(): Promise<string>
}

export interface MetricsOptions {
  /** The replay cache whose size the `portcullis_replay_cache_entries` gauge reports at scrape time. */
  replay?: Pick<ReplayStore, 'kind' | 'size'>
  /** Default Node.js process metrics (process_*, nodejs_*); on unless false. */
  defaultMetrics?: boolean
  credentialSeriesLimit?: number
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
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
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

  const listener: DecisionListener = {
    decision(r: AuditRecord, detail?: DecisionDetail) {
      const route = r.route ?? NO_ROUTE_LABEL
      requests.inc({ route, method: r.method ?? '', status: String(r.status) })
      const allowed = r.event === 'allow'
      const result = allowed ? 'allow' : r.event === 'report' ? 'report' : 'deny'
      decisions.inc({ route, auth_method: r.authMethod ?? 'none', result, reason: allowed ? '' : (r.reason ?? '') })
      if (r.event === 'ratelimit') rateLimited.inc({ route, by: detail?.limitedBy ?? 'identity' })
      if (detail?.upstreamMs !== undefined && r.upstream) upstreamDuration.observe({ upstream: r.upstream, route }, detail.upstreamMs / 1000)
      if (r.identity && r.fp && (allowed || AUTHENTICATED_DENIALS.has(r.reason ?? ''))) credentialUsed(r.identity, r.fp)
    },
  }

  return {
    registry,
    listener,
    configReload: (result) => reloads.inc({ result }),
    text: () => registry.metrics(),
  }
}
