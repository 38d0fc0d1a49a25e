// OpenTelemetry (DESIGN §2 `tracing`): the tracer provider, its batch processor and the OTLP/HTTP
// exporter, and one SERVER span per request that continues the client's W3C traceparent. process.ts
// loads this module only when `tracing` is configured; the spans never carry a credential or a header.
import type { IncomingHttpHeaders } from 'node:http'
import type { Gateway } from '../config/compile.js'
import type { AuditRecord } from './audit.js'
import { VERSION } from '../version.js'

/** One request's span, started with its Exchange and ended with its audit line. */
export interface RequestSpan {
  /** What the upstream is sent: `traceparent` naming this span, and `tracestate` when the trace has one. */
  propagation(): Record<string, string>
  end(record: AuditRecord): void
}

export interface RequestTracer {
  /** A valid traceparent (+ tracestate) in `headers` is continued; anything else starts a new trace. */
  start(headers: IncomingHttpHeaders | undefined): RequestSpan
}

export interface Tracing {
  tracer: RequestTracer
  /** Export what is still batched, then stop; bounded, so a dead collector cannot hold the shutdown. */
  shutdown(): Promise<void>
}

/** How long shutdown waits for the last batch to reach the collector. */
const SHUTDOWN_LIMIT_MS = 3000

export async function startTracing(cfg: NonNullable<Gateway['tracing']>): Promise<Tracing> {
  // Dynamic imports: a gateway without `tracing` never loads the SDK (free when off).
  const [api, core, resources, sdk, otlp] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ])
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': cfg.serviceName, 'service.version': VERSION }),
    // A short delay: spans reach the collector about a second after their request, batched under load.
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new otlp.OTLPTraceExporter({ url: cfg.endpoint }), scheduledDelayMillis: 1000 })],
  })
  const tracer = provider.getTracer('portcullis', VERSION)
  // Used directly rather than registered globally: the gateway is not the only code in a test process.
  const propagator = new core.W3CTraceContextPropagator()
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace } = api

  return {
    tracer: {
      start(headers) {
        const parent = headers ? propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter) : ROOT_CONTEXT
        const span = tracer.startSpan('request', { kind: SpanKind.SERVER }, parent)
        return {
          propagation() {
            const out: Record<string, string> = {}
            propagator.inject(trace.setSpan(ROOT_CONTEXT, span), out, defaultTextMapSetter)
            return out
          },
          end(r) {
            // The HTTP semantic conventions' name and keys, plus the audit line's decision fields.
            span.updateName(r.method ? (r.route ? `${r.method} ${r.route}` : r.method) : 'HTTP')
            const attrs: Record<string, string | number> = { 'http.response.status_code': r.status, 'portcullis.decision': r.event, 'portcullis.request_id': r.reqId }
            if (r.method) attrs['http.request.method'] = r.method
            if (r.route) attrs['http.route'] = attrs['portcullis.route'] = r.route
            if (r.authMethod) attrs['portcullis.auth_method'] = r.authMethod
            if (r.reason) attrs['portcullis.reason'] = r.reason
            if (r.upstream) attrs['portcullis.upstream'] = r.upstream
            span.setAttributes(attrs)
            // A refusal (4xx) is the gateway working; only a 5xx marks the span as an error.
            if (r.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, ...(r.reason ? { message: r.reason } : {}) })
            span.end()
          },
        }
      },
    },
    async shutdown() {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([provider.shutdown().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, SHUTDOWN_LIMIT_MS)))])
      clearTimeout(timer)
    },
  }
}
