// The audit trail: exactly one `auth` line per request decision (DESIGN §6), and the hook that
// metrics hang off. Credentials appear only as fingerprints; nothing here sees a raw secret.
import { pino, type Logger } from 'pino'
import { CREDENTIAL_HEADERS } from '../auth/methods.js'

export type AuditEvent = 'allow' | 'deny' | 'ratelimit' | 'replay' | 'report'

export interface AuditRecord {
  event: AuditEvent
  reqId: string
  /** null only for a request the HTTP parser refused before its request line could be read. */
  method: string | null
  path: string | null
  route: string | null
  /** Only an identity whose credential was verified (also on a 403, 429 or REPLAYED refusal). */
  identity: string | null
  /**
   * The name a refused credential claimed (a keyid, an x-worker-id, a join keyid, a failed token's
   * `sub`), as the client sent it; never proof of anything. Optional so records built elsewhere compile.
   */
  claimed?: string | null
  authMethod: string | null
  fp: string | null
  reason: string | null
  ip: string
  status: number
  upstream: string | null
  ms: number
}

/** Facts about a decision that metrics need but the audit line does not carry (never logged). */
export interface DecisionDetail {
  /** What refused a 429: a route limit's `by`, `authFailures` for the per-IP failed-auth throttle, or a route's `concurrency`. */
  limitedBy?: 'identity' | 'ip' | 'authFailures' | 'concurrency'
  /** Milliseconds from sending to the upstream until its response headers (or its failure). */
  upstreamMs?: number
}

/** Something that wants to hear about every decision (the audit log, metrics). */
export interface DecisionListener {
  decision(record: AuditRecord, detail?: DecisionDetail): void
}

export function createAuditLog(logger: Logger): DecisionListener {
  const write = auditLineWriter(logger)
  return {
    decision: write ?? ((record) => logger.info(record, 'auth')),
  }
}

/**
 * The `auth` line exactly as `logger.info(record, 'auth')` writes it — level, time, the logger's bindings,
 * the record's fields in order, msg — serialized by one JSON.stringify and handed to the logger's own
 * destination. pino's generic serializer (per key, by string concatenation) was the largest allocation of
 * a request (docs/performance.md). undefined when the logger is configured in a way this does not
 * reproduce (mixins, formatters, hooks, a message key other than msg): then pino writes the line itself.
 */
function auditLineWriter(logger: Logger): ((record: AuditRecord) => void) | undefined {
  const s = pino.symbols
  const l = logger as unknown as Record<symbol, unknown>
  const stream = l[s.streamSym] as { write(line: string): unknown } | undefined
  const time = l[s.timeSym] as (() => string) | undefined
  const chindings = l[s.chindingsSym]
  const formatters = l[s.formattersSym] as { level?: (label: string, n: number) => object; bindings?: unknown; log?: (o: object) => object } | undefined
  const hooks = l[s.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined
  if (typeof stream?.write !== 'function' || typeof time !== 'function' || typeof chindings !== 'string') return undefined
  if (l[s.mixinSym] || hooks?.logMethod || hooks?.streamWrite || l[s.messageKeySym] !== 'msg' || l[s.nestedKeySym]) return undefined
  // pino's default formatters only: the level as its number, the object as given.
  const level = formatters?.level?.('info', logger.levels.values.info!)
  if (JSON.stringify(level) !== `{"level":${logger.levels.values.info}}` || formatters?.log !== undefined) return undefined
  const head = `{"level":${logger.levels.values.info}`
  return (record) => {
    if (!logger.isLevelEnabled('info')) return
    stream.write(head + time() + chindings + ',' + auditFields(record) + ',"msg":"auth"}\n')
  }
}

/**
 * The record's fields as `JSON.stringify(record).slice(1, -1)` writes them, byte for byte (a property test
 * holds the two equal), in the record's key order. Its strings are mostly short names that need no escaping,
 * which this copies as they are; JSON.stringify walked the object and escaped every string (~13 000
 * instructions of a ~330 000-instruction bearer request under callgrind, docs/performance.md).
 */
export function auditFields(r: AuditRecord): string {
  return (
    '"event":' + str(r.event) +
    ',"reqId":' + str(r.reqId) +
    ',"method":' + str(r.method) +
    ',"path":' + str(r.path) +
    ',"route":' + str(r.route) +
    ',"identity":' + str(r.identity) +
    ',"authMethod":' + str(r.authMethod) +
    ',"fp":' + str(r.fp) +
    ',"reason":' + str(r.reason) +
    ',"ip":' + str(r.ip) +
    ',"status":' + num(r.status) +
    ',"upstream":' + str(r.upstream) +
    ',"ms":' + num(r.ms) +
    (r.claimed === undefined ? '' : ',"claimed":' + str(r.claimed))
  )
}

/** A string as JSON: quoted as is when no character needs an escape, otherwise by JSON.stringify. */
function str(s: string | null): string {
  if (s === null) return 'null'
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    // control characters, `"`, `\`, and UTF-16 surrogates (a lone one is escaped as \uXXXX)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s)
  }
  return '"' + s + '"'
}

/** A number as JSON: NaN and the infinities are null. */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/** Headers whose values are never logged, should a log line ever include request headers: every auth method's (auth/methods.ts), cookies, proxy credentials. */
export const REDACTED_HEADERS = [...CREDENTIAL_HEADERS, 'cookie', 'proxy-authorization']
