// DESIGN §2 `tracing`: one span per request exported over OTLP/HTTP to a receiver in this test, the
// client's W3C traceparent continued, the gateway's own span sent on to the upstream; and with no
// `tracing` in the config the SDK is never loaded and traceparent passes through as it did before.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { AddressInfo } from 'node:net'
import { startBackend, startGateway, testSecret } from './harness.js'

const TOKEN = testSecret('tracing')
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'

interface Span {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attrs: Record<string, string | number>
  resource: Record<string, string | number>
}

/** A minimal OTLP/HTTP traces receiver: POST /v1/traces, JSON (the http exporter's encoding). */
async function startReceiver(): Promise<{ url: string; spans: Span[]; posts: number; server: Server }> {
  const r = { url: '', spans: [] as Span[], posts: 0, server: undefined as unknown as Server }
  const value = (v: Record<string, unknown>): string | number =>
    'stringValue' in v ? String(v.stringValue) : 'intValue' in v ? Number(v.intValue) : 'boolValue' in v ? String(v.boolValue) : JSON.stringify(v)
  const flat = (a: { key: string; value: Record<string, unknown> }[] | undefined) => Object.fromEntries((a ?? []).map((x) => [x.key, value(x.value)]))
  r.server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      r.posts++
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      if (req.method === 'POST' && req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        const doc = JSON.parse(body.toString()) as { resourceSpans: { resource?: { attributes?: [] }; scopeSpans: { spans: (Omit<Span, 'attrs' | 'resource'> & { attributes?: [] })[] }[] }[] }
        for (const rs of doc.resourceSpans)
          for (const ss of rs.scopeSpans)
            for (const s of ss.spans)
              r.spans.push({ traceId: s.traceId, spanId: s.spanId, ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}), name: s.name, kind: s.kind, attrs: flat(s.attributes), resource: flat(rs.resource?.attributes) })
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise<void>((ok) => r.server.listen(0, '127.0.0.1', ok))
  r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`
  return r
}

async function waitFor<T>(what: string, f: () => T | undefined, ms = 15_000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = f()
    if (v !== undefined) return v
    if (Date.now() > until) throw new Error(`not seen within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function config(backend: string, tracing: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
upstreams: { orchestrator: { url: "${backend}" } }
identities:
  - { name: ops, roles: [admin], bearer: "\${env:T_TOKEN}" }
routes:
  - { prefix: /v2/, upstream: orchestrator, auth: [bearer] }
${tracing}
`
}

/** A module hook that reports every OpenTelemetry SDK module (and our tracing module) the gateway loads. */
function loadSpy(): { NODE_OPTIONS: string } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-otel-spy-'))
  writeFileSync(
    join(dir, 'hook.mjs'),
    `import { writeSync } from 'node:fs'
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx)
  if (/@opentelemetry\\/(sdk-trace|exporter-trace|resources|core)\\/|observe\\/tracing\\.js/.test(r.url)) writeSync(2, 'LOADED ' + r.url + '\\n')
  return r
}
`,
  )
  writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)})\n`)
  return { NODE_OPTIONS: `--import ${pathToFileURL(join(dir, 'register.mjs')).href}` }
}

t.test('tracing on: span per request, traceparent continued and passed on as the gateway span', async (t) => {
  const receiver = await startReceiver()
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, `tracing: { otlp: "${receiver.url}", serviceName: edge-test }`), { T_TOKEN: TOKEN, ...loadSpy() })
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
    receiver.server.close()
  })
  t.match(gw.output(), /LOADED .*@opentelemetry\/sdk-trace\//, 'the load spy sees the SDK when tracing is on (so its silence below means something)')

  // Allowed, with a client traceparent + tracestate.
  const ok = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}`, traceparent: `00-${TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' } })
  t.equal(ok.status, 200)
  const reqId = ok.headers.get('x-request-id')!
  const sent = backend.requests.at(-1)!
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(sent.headers.traceparent))
  t.ok(m, `the upstream got a traceparent: ${sent.headers.traceparent}`)
  t.equal(m?.[1], TRACE, 'same trace id')
  t.not(m?.[2], CLIENT_SPAN, "the client's span id is not forwarded: the gateway's span is the parent")
  t.equal(sent.headers.tracestate, 'vendor=abc', 'tracestate goes on with the trace')
  t.equal(sent.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length, 1, 'exactly one traceparent upstream')

  const span = await waitFor('the allowed span', () => receiver.spans.find((s) => s.attrs['portcullis.request_id'] === reqId))
  const audit = gw.audits().find((a) => a.reqId === reqId)!
  t.equal(span.traceId, TRACE, 'span continues the trace')
  t.equal(span.parentSpanId, CLIENT_SPAN, "parent = the client's span")
  t.equal(span.spanId, m?.[2], 'the upstream was told this span is its parent')
  t.equal(span.kind, 2, 'SERVER')
  t.equal(span.name, `GET ${audit.route}`)
  t.match(span.attrs, {
    'http.request.method': 'GET',
    'http.route': audit.route,
    'portcullis.route': audit.route,
    'portcullis.auth_method': 'bearer',
    'portcullis.decision': 'allow',
    'portcullis.upstream': 'orchestrator',
    'http.response.status_code': 200,
  })
  t.equal(span.resource['service.name'], 'edge-test')

  // Refused (401): a span too, in the client's trace, never forwarded.
  const before = backend.requests.length
  const denied = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: 'Bearer wrong-token-wrong-token-wrong-token', traceparent: `00-${TRACE}-${CLIENT_SPAN}-01` } })
  t.equal(denied.status, 401)
  const deniedId = denied.headers.get('x-request-id')!
  const dspan = await waitFor('the refused span', () => receiver.spans.find((s) => s.attrs['portcullis.request_id'] === deniedId))
  const daudit = gw.audits().find((a) => a.reqId === deniedId)!
  t.equal(dspan.traceId, TRACE)
  t.equal(dspan.parentSpanId, CLIENT_SPAN)
  t.match(dspan.attrs, { 'portcullis.decision': 'deny', 'http.response.status_code': 401, 'portcullis.reason': daudit.reason, 'portcullis.route': daudit.route })
  t.equal(backend.requests.length, before, 'not forwarded')

  // An invalid traceparent starts a new trace rather than being continued or passed on.
  const bad = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}`, traceparent: `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' } })
  t.equal(bad.status, 200)
  const badId = bad.headers.get('x-request-id')!
  const bsent = backend.requests.at(-1)!
  const bm = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(bsent.headers.traceparent))
  t.ok(bm, `a fresh traceparent upstream: ${bsent.headers.traceparent}`)
  t.not(bm?.[1], '0'.repeat(32))
  t.equal(bsent.headers.tracestate, undefined, 'no tracestate of a trace that was not continued')
  const bspan = await waitFor('the new-trace span', () => receiver.spans.find((s) => s.attrs['portcullis.request_id'] === badId))
  t.equal(bspan.traceId, bm?.[1])
  t.equal(bspan.parentSpanId, undefined, 'a root span')

  // The client's sampling decision is honoured: an unsampled trace is passed on unsampled, not exported.
  const unsampled = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}`, traceparent: `00-${TRACE}-${CLIENT_SPAN}-00` } })
  t.equal(unsampled.status, 200)
  const unsampledId = unsampled.headers.get('x-request-id')!
  t.match(String(backend.requests.at(-1)!.headers.traceparent), new RegExp(`^00-${TRACE}-(?!${CLIENT_SPAN})[0-9a-f]{16}-00$`), 'passed on unsampled, under the gateway span id')
  const after = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })
  const afterId = after.headers.get('x-request-id')!
  await waitFor('the span of the request after the unsampled one', () => receiver.spans.find((s) => s.attrs['portcullis.request_id'] === afterId))
  t.notOk(receiver.spans.some((s) => s.attrs['portcullis.request_id'] === unsampledId), 'no span for the unsampled request')
  t.notOk(JSON.stringify(receiver.spans).includes(TOKEN), 'no credential in any span')

  // The provider is built at start: a reload that changes `tracing` says a restart is needed.
  writeFileSync(gw.configFile, config(backend.url, `tracing: { otlp: "${receiver.url}", serviceName: other }`))
  gw.child.kill('SIGHUP')
  const reload = await gw.waitForLog((l) => l.msg === 'config.reload', 10_000)
  t.match(reload, { result: 'ok', restartRequired: ['tracing'] })
})

t.test('SIGTERM: the span of the last request is exported before the process exits', async (t) => {
  const receiver = await startReceiver()
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, `tracing: { otlp: "${receiver.url}" }`), { T_TOKEN: TOKEN })
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
    receiver.server.close()
  })
  const res = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })
  const reqId = res.headers.get('x-request-id')!
  t.equal(await gw.stop(), 0)
  const span = receiver.spans.find((s) => s.attrs['portcullis.request_id'] === reqId)
  t.ok(span, 'exported at shutdown, not lost with the batch')
  t.equal(span?.resource['service.name'], 'portcullis', 'serviceName defaults to portcullis')
})

t.test('collector down: requests are answered as usual and SIGTERM still exits 0', async (t) => {
  const gone = createServer()
  await new Promise<void>((ok) => gone.listen(0, '127.0.0.1', ok))
  const port = (gone.address() as AddressInfo).port
  await new Promise<void>((ok) => gone.close(() => ok()))
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, `tracing: { otlp: "http://127.0.0.1:${port}" }`), { T_TOKEN: TOKEN })
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
  })
  for (let i = 0; i < 5; i++) t.equal((await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
  t.equal((await fetch(`${gw.url}/v2/jobs`)).status, 401)
  t.equal(await gw.stop(), 0, 'exits 0 (the last export is bounded, not retried forever)')
  t.notMatch(gw.output(), /"level":(50|60)/, 'no error-level line for an unreachable collector')
})

t.test('tracing absent: the SDK is never loaded, nothing is exported, traceparent passes through unchanged', async (t) => {
  const receiver = await startReceiver()
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, ''), { T_TOKEN: TOKEN, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, ...loadSpy() })
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
    receiver.server.close()
  })
  const traceparent = `00-${TRACE}-${CLIENT_SPAN}-01`
  const res = await fetch(`${gw.url}/v2/jobs`, { headers: { authorization: `Bearer ${TOKEN}`, traceparent, tracestate: 'vendor=abc' } })
  t.equal(res.status, 200)
  const sent = backend.requests.at(-1)!
  t.equal(sent.headers.traceparent, traceparent, 'forwarded as sent')
  t.equal(sent.headers.tracestate, 'vendor=abc')
  t.equal(await gw.stop(), 0)
  t.notMatch(gw.output(), /LOADED /, 'no OpenTelemetry SDK module and no observe/tracing.js was loaded')
  t.equal(receiver.posts, 0, 'nothing reached the receiver, even with OTEL_EXPORTER_OTLP_ENDPOINT set')
})
