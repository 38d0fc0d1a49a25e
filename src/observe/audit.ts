// The audit trail: exactly one `auth` line per request decision (DESIGN §6), and the hook that
// metrics hang off. Credentials appear only as fingerprints; nothing here sees a raw secret.
import type { Logger } from 'pino'
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
  return {
    decision(record) {
      logger.info(record, 'auth')
    },
  }
}

/** Headers whose values are never logged, should a log line ever include request headers: every auth method's (auth/methods.ts), cookies, proxy credentials. */
export const REDACTED_HEADERS = [...CREDENTIAL_HEADERS, 'cookie', 'proxy-authorization']
