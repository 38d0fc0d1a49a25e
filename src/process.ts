// One running gateway: config, state, the proxy listener, the admin listener and the reload
// watcher, started and stopped together. Used by `serve`, the demo and the tests.
import type { Logger } from 'pino'
import type { Gateway } from './config/compile.js'
import { createState, type State } from './state/index.js'
import { startGatewayServer, type GatewayServer } from './server.js'
import { createAuditLog } from './observe/audit.js'
import { createMetrics, type Metrics } from './observe/metrics.js'
import { configuredFingerprints } from './observe/credential-fingerprints.js'
import { startAdminServer } from './admin/server.js'
import { watchConfig, type ConfigReloader } from './config/reload.js'
import { assertionJwks, assertRequest } from './proxy/assertion.js'
import { keySetsNotReady, startKeySets } from './auth/jwks-remote.js'
import type { Tracing } from './observe/tracing.js'

export interface RunningGateway {
  url: string
  /** http://host:port of the admin listener, when the config has `admin:`. */
  adminUrl?: string
  server: GatewayServer
  metrics?: Metrics
  reloader: ConfigReloader
  state: State
  logger: Logger
  close(): Promise<void>
}

export async function startGateway(o: { file: string; gateway: Gateway; logger: Logger; /** lint findings for the `listening` line */ warnings?: string[] }): Promise<RunningGateway> {
  // Redis going away and coming back is logged once per change (the detail names no credential).
  const state = await createState({
    ...o.gateway.state,
    onModeChange: (mode, detail) =>
      mode === 'ok' ? o.logger.info({ event: 'state.store', mode, detail }, 'state.store') : o.logger.warn({ event: 'state.store', mode, detail }, 'state.store'),
  })
  // Metrics only exist to be scraped from the admin listener; without `admin:` nothing is counted.
  const metrics = o.gateway.admin ? createMetrics({ replay: state.replay, credentials: configuredFingerprints(o.gateway.raw) }) : undefined
  const listeners = [createAuditLog(o.logger), ...(metrics ? [metrics.listener] : [])]
  // DESIGN §2: without `tracing` the OpenTelemetry SDK is never imported (free when off).
  const tracing: Tracing | undefined = o.gateway.tracing ? await (await import('./observe/tracing.js')).startTracing(o.gateway.tracing) : undefined
  const server = await startGatewayServer({
    gateway: o.gateway,
    state,
    logger: o.logger,
    listeners,
    assert: assertRequest,
    ...(metrics ? { trackResponse: metrics.trackResponse } : {}),
    ...(tracing ? { tracer: tracing.tracer } : {}),
  }).catch(async (err: unknown) => {
    await tracing?.shutdown()
    throw err
  })
  // DESIGN §4.6: remote key sets are fetched at start, not on the first request that needs one.
  startKeySets(o.gateway)
  let draining = false
  const admin = o.gateway.admin
    ? await startAdminServer({
        listen: o.gateway.admin.listen,
        metrics: metrics!,
        notReady: () => (draining ? 'shutting down' : !state.ready() ? 'state store unreachable' : keySetsNotReady(server.runtime.gateway)),
        jwks: () => assertionJwks(server.runtime.gateway),
      }).catch(async (err: unknown) => {
        await server.close(0)
        throw err
      })
    : undefined
  const reloader = watchConfig({
    file: o.file,
    logger: o.logger,
    current: () => server.runtime.gateway,
    apply: (next) => {
      const restart = state.reconfigure(next.state)
      // The tracer provider is built once, at start.
      if (JSON.stringify(next.tracing) !== JSON.stringify(o.gateway.tracing)) restart.push('tracing')
      server.reload(next)
      startKeySets(next)
      return restart
    },
    // A credential the new config no longer names loses its last-used series (DESIGN §6).
    onResult: (result) => metrics?.configReload(result, result === 'ok' ? configuredFingerprints(server.runtime.gateway.raw) : undefined),
  })
  o.logger.info({ url: server.url, ...(admin ? { admin: admin.url } : {}), config: o.file, ...(o.warnings?.length ? { warnings: o.warnings } : {}) }, 'listening')
  return {
    url: server.url,
    ...(admin ? { adminUrl: admin.url } : {}),
    server,
    ...(metrics ? { metrics } : {}),
    reloader,
    state,
    logger: o.logger,
    async close() {
      reloader.close()
      draining = true
      // The grace of the config in service now: a reload may have changed server.shutdownGrace.
      await server.close(server.runtime.gateway.server.shutdownGraceMs)
      await admin?.close()
      // After the drain: the spans of the last requests are exported before the process stops.
      await tracing?.shutdown()
      await state.close()
      o.logger.info('stopped')
      await new Promise<void>((r) => o.logger.flush(() => r()))
    },
  }
}
