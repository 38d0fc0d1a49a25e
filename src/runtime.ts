// What every request of this process shares: the config in force (swapped whole on reload), the state
// store, upstream pools, decision listeners. Types only; owns no behaviour.
import type { Logger } from 'pino'
import type { CompiledRoute, Gateway } from './config/compile.js'
import type { Identity } from './auth/types.js'
import type { DecisionListener } from './observe/audit.js'
import type { GatewayState } from './policy/limits.js'
import type { UpstreamPools } from './proxy/forward.js'
import type { RequestTracer } from './observe/tracing.js'

export interface Runtime {
  gateway: Gateway
  state: GatewayState
  pools: UpstreamPools
  listeners: DecisionListener[]
  logger: Logger
  tls: boolean
  newRequestId(): string
  /** Metrics of one request's life (observe/metrics.ts); absent without an admin listener. */
  trackResponse?: (lifetime: { once(event: 'close', listener: () => void): unknown }, route: string | null, method: string, startedAt: number) => void
  /** A span per request (observe/tracing.ts); absent without `tracing:` in the config. */
  tracer?: RequestTracer
  /** Extra headers bound to this request (the signed assertion), set after all stripping. */
  assert?: (gw: Gateway, a: { identity: Identity; route: CompiledRoute; method: string; target: string; body?: Buffer; reqId: string }) => Promise<Record<string, string>>
}
