// The report-only checklist (DESIGN §3.2): folds audit lines into per-route counts of requests,
// would-be refusals and the clients behind them. Pure and in bounded memory whatever the log holds:
// never keeps a line, and never keeps more than a fixed number of routes or clients.
import { ERRORS, type ErrorCode } from '../errors.js'

export type Verdict = 'ready' | 'not ready'
/** What the log shows of a route's mode: `mixed` when it was switched during the period read. */
export type EnforceSeen = 'report' | 'on' | 'mixed' | 'unknown'

const EVENTS = ['allow', 'deny', 'ratelimit', 'replay', 'report'] as const
type Event = (typeof EVENTS)[number]

/** The refusals of steps 3–5 that `enforce: report` turns into `event: "report"` (DESIGN §3.2). */
function isAuthRefusal(code: ErrorCode): boolean {
  const status: number = ERRORS[code].status
  return status === 401 || status === 403 || status === 429 || code === 'STATE_UNAVAILABLE'
}

/** The fields of an audit line (DESIGN §6) that the report reads. */
export interface AuditFacts {
  event: Event
  route: string | null
  identity: string | null
  claimed: string | null
  fp: string | null
  reason: ErrorCode | null
  ip: string
  time: number | null
}

/** A client behind refusals: its verified identity, or its address when it has none. */
export interface ReportClient {
  identity?: string
  ip?: string
  fp: string | null
  /** The name it claimed on a refused credential (a keyid, an x-worker-id), never verified. */
  claimed?: string
  reason: ErrorCode
  count: number
  /** ISO time of its latest such request, when the lines carry pino's `time`. */
  last: string | null
}

export interface RouteReport {
  route: string
  requests: number
  enforce: EnforceSeen
  events: Record<Event, number>
  wouldRefuse: Partial<Record<ErrorCode, number>>
  clients: ReportClient[]
  /** Would-be refusals by reason from clients beyond the listed top ones. */
  unlistedClients: Partial<Record<ErrorCode, number>>
  /** Refusals actually sent (on an enforced route, or the always-enforced framing/method/body checks). */
  refused: Partial<Record<ErrorCode, number>>
  refusedClients: ReportClient[]
  unlistedRefusedClients: Partial<Record<ErrorCode, number>>
  /** True when more distinct clients were seen than are tracked: listed counts are then lower bounds. */
  countsApproximate: boolean
  verdict: Verdict
}

export interface Report {
  routes: RouteReport[]
  /** Requests that matched no route (404, 400 BAD_PATH, parser refusals): never affected by `enforce`. */
  unmatched: { requests: number; refused: Partial<Record<ErrorCode, number>> }
  lines: { audit: number; skipped: number }
  period: { from: string | null; to: string | null }
}

export interface ReportLimits {
  /** Clients listed per route and reason. */
  topClients: number
  /** Distinct clients tracked per route and reason (the memory bound); at least twice topClients. */
  trackedClients: number
  /** Distinct routes tracked; lines of further routes are counted as skipped. */
  maxRoutes: number
}

export const DEFAULT_LIMITS: ReportLimits = { topClients: 10, trackedClients: 200, maxRoutes: 1000 }

/** Longest field value kept (identity, ip, fp, claimed, route): a log line cannot make an entry big. */
const MAX_FIELD = 256

const nullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'

/** The audit facts of one log line, or null for anything else (banners, other loggers, broken JSON). */
export function parseAuditLine(line: string): AuditFacts | null {
  if (!/^\s*\{/.test(line)) return null
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null
  const o = v as Record<string, unknown>
  if (o.msg !== 'auth' || !(EVENTS as readonly unknown[]).includes(o.event)) return null
  if (!nullableString(o.route) || typeof o.ip !== 'string') return null
  if (o.route !== null && o.route.length > MAX_FIELD) return null
  const reason = o.reason ?? null
  if (reason !== null && !(typeof reason === 'string' && Object.hasOwn(ERRORS, reason))) return null
  const identity = o.identity ?? null
  const fp = o.fp ?? null
  const claimed = o.claimed ?? null
  if (!nullableString(identity) || !nullableString(fp) || !nullableString(claimed)) return null
  const cut = (s: string | null) => (s === null ? null : s.slice(0, MAX_FIELD))
  return {
    event: o.event as Event,
    route: o.route,
    identity: cut(identity),
    claimed: cut(claimed),
    fp: cut(fp),
    reason: reason as ErrorCode | null,
    ip: o.ip.slice(0, MAX_FIELD),
    time: typeof o.time === 'number' && Number.isFinite(o.time) ? o.time : null,
  }
}

interface ClientEntry {
  identity: string | null
  ip: string
  fp: string | null
  claimed: string | null
  count: number
  last: number | null
}

/**
 * Counts per client for one route and reason, holding at most `tracked` entries: when full, the
 * lower half by count is dropped (amortised O(log n) per line), so a client that keeps failing stays
 * listed while a flood of one-off clients (a brute force with fresh tokens) cannot grow memory.
 */
class ClientTable {
  readonly entries = new Map<string, ClientEntry>()
  total = 0
  pruned = false
  constructor(private readonly tracked: number) {}

  add(f: AuditFacts): void {
    this.total++
    const key = f.identity !== null ? `i\0${f.identity}\0${f.fp}` : `a\0${f.ip}\0${f.fp}\0${f.claimed}`
    let e = this.entries.get(key)
    if (!e) {
      if (this.entries.size >= this.tracked) this.prune()
      e = { identity: f.identity, ip: f.ip, fp: f.fp, claimed: f.identity === null ? f.claimed : null, count: 0, last: null }
      this.entries.set(key, e)
    }
    e.count++
    if (f.time !== null && (e.last === null || f.time > e.last)) e.last = f.time
  }

  private prune(): void {
    const kept = [...this.entries].sort((a, b) => b[1].count - a[1].count).slice(0, Math.floor(this.tracked / 2))
    this.entries.clear()
    for (const [k, e] of kept) this.entries.set(k, e)
    this.pruned = true
  }

  top(n: number, reason: ErrorCode): { clients: ReportClient[]; unlisted: number } {
    const sorted = [...this.entries.values()].sort((a, b) => b.count - a.count || (a.identity ?? a.ip).localeCompare(b.identity ?? b.ip))
    const clients = sorted.slice(0, n).map((e) => toClient(e, reason))
    return { clients, unlisted: this.total - clients.reduce((s, c) => s + c.count, 0) }
  }
}

function toClient(e: ClientEntry, reason: ErrorCode): ReportClient {
  const who: Pick<ReportClient, 'identity' | 'ip'> = e.identity !== null ? { identity: e.identity } : { ip: e.ip }
  const c: ReportClient = { ...who, fp: e.fp, reason, count: e.count, last: e.last === null ? null : new Date(e.last).toISOString() }
  if (e.claimed !== null) c.claimed = e.claimed
  return c
}

interface RouteState {
  requests: number
  events: Record<Event, number>
  wouldRefuse: Map<ErrorCode, ClientTable>
  refused: Map<ErrorCode, ClientTable>
  authRefusals: number
}

/** Accumulates audit lines (from any number of files, in any order) into one report. */
export class ReportBuilder {
  private readonly routes = new Map<string, RouteState>()
  private readonly unmatched = { requests: 0, refused: new Map<ErrorCode, number>() }
  private audit = 0
  private skipped = 0
  private from: number | null = null
  private to: number | null = null
  private readonly limits: ReportLimits

  constructor(limits: Partial<ReportLimits> = {}) {
    const l = { ...DEFAULT_LIMITS, ...limits }
    this.limits = { ...l, trackedClients: Math.max(l.trackedClients, 2 * l.topClients, 2) }
  }

  /** Client entries held right now, over all routes and reasons: what the memory bound bounds. */
  get trackedClientEntries(): number {
    let n = 0
    for (const r of this.routes.values()) for (const t of [...r.wouldRefuse.values(), ...r.refused.values()]) n += t.entries.size
    return n
  }

  /** One raw log line; anything that is not an audit line is counted as skipped. */
  addLine(line: string): void {
    const f = parseAuditLine(line)
    if (f) this.add(f)
    else this.skip()
  }

  /** A line the reader dropped unread (longer than any audit line). */
  skip(): void {
    this.skipped++
  }

  add(f: AuditFacts): void {
    if (f.route === null) {
      this.unmatched.requests++
      if (f.reason !== null) this.unmatched.refused.set(f.reason, (this.unmatched.refused.get(f.reason) ?? 0) + 1)
      this.counted(f)
      return
    }
    let r = this.routes.get(f.route)
    if (!r) {
      if (this.routes.size >= this.limits.maxRoutes) return this.skip()
      r = { requests: 0, events: { allow: 0, deny: 0, ratelimit: 0, replay: 0, report: 0 }, wouldRefuse: new Map(), refused: new Map(), authRefusals: 0 }
      this.routes.set(f.route, r)
    }
    this.counted(f)
    r.requests++
    r.events[f.event]++
    if (f.reason === null || f.event === 'allow') return // allowed, possibly with an upstream error
    const tables = f.event === 'report' ? r.wouldRefuse : r.refused
    if (f.event !== 'report' && isAuthRefusal(f.reason)) r.authRefusals++
    let table = tables.get(f.reason)
    if (!table) tables.set(f.reason, (table = new ClientTable(this.limits.trackedClients)))
    table.add(f)
  }

  private counted(f: AuditFacts): void {
    this.audit++
    if (f.time === null) return
    if (this.from === null || f.time < this.from) this.from = f.time
    if (this.to === null || f.time > this.to) this.to = f.time
  }

  result(): Report {
    const routes = [...this.routes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([route, r]) => this.routeReport(route, r))
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString())
    return {
      routes,
      unmatched: { requests: this.unmatched.requests, refused: Object.fromEntries(sortedCounts(this.unmatched.refused)) },
      lines: { audit: this.audit, skipped: this.skipped },
      period: { from: iso(this.from), to: iso(this.to) },
    }
  }

  private routeReport(route: string, r: RouteState): RouteReport {
    const would = this.group(r.wouldRefuse)
    const refused = this.group(r.refused)
    const reportSeen = r.events.report > 0
    const onSeen = r.authRefusals > 0
    return {
      route,
      requests: r.requests,
      enforce: reportSeen && onSeen ? 'mixed' : reportSeen ? 'report' : onSeen ? 'on' : 'unknown',
      events: r.events,
      wouldRefuse: would.counts,
      clients: would.clients,
      unlistedClients: would.unlisted,
      refused: refused.counts,
      refusedClients: refused.clients,
      unlistedRefusedClients: refused.unlisted,
      countsApproximate: [...r.wouldRefuse.values(), ...r.refused.values()].some((t) => t.pruned),
      verdict: r.events.report > 0 ? 'not ready' : 'ready',
    }
  }

  private group(tables: Map<ErrorCode, ClientTable>) {
    const counts: Partial<Record<ErrorCode, number>> = {}
    const unlisted: Partial<Record<ErrorCode, number>> = {}
    const clients: ReportClient[] = []
    for (const [reason, total] of sortedCounts(new Map([...tables].map(([k, t]) => [k, t.total])))) {
      counts[reason] = total
      const top = tables.get(reason)!.top(this.limits.topClients, reason)
      clients.push(...top.clients)
      if (top.unlisted > 0) unlisted[reason] = top.unlisted
    }
    return { counts, clients, unlisted }
  }
}

/** Largest first, then by code: the order the checklist is read in. */
function sortedCounts(m: Map<ErrorCode, number>): [ErrorCode, number][] {
  return [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
}
