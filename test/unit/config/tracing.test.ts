// DESIGN §2 `tracing`: otlp is the collector's OTLP/HTTP base URL (spans go to its /v1/traces),
// serviceName defaults to portcullis; a bad URL or an unknown key is an error at FILE:LINE:COL.
import t from 'tap'
import { formatFinding, loadConfigText } from '../../../src/config/load.js'

const FILE = '/etc/portcullis/gateway.yaml'

function config(tracing: string): string {
  return `version: 1
upstreams:
  be: { url: "http://127.0.0.1:9000" }
routes:
  - { path: /health, upstream: be, public: true }
tracing:
${tracing}
`
}

t.test('absent: tracing off', async (t) => {
  const r = loadConfigText(config('').replace('tracing:\n', ''), FILE, {})
  t.ok(r.ok)
  t.equal(r.ok && r.gateway.tracing, undefined)
})

t.test('otlp base URL gets /v1/traces; serviceName defaults to portcullis', async (t) => {
  for (const [otlp, endpoint] of [
    ['http://127.0.0.1:4318', 'http://127.0.0.1:4318/v1/traces'],
    ['http://127.0.0.1:4318/', 'http://127.0.0.1:4318/v1/traces'],
    ['https://collector.internal/otlp', 'https://collector.internal/otlp/v1/traces'],
    ['http://127.0.0.1:4318/v1/traces', 'http://127.0.0.1:4318/v1/traces'],
  ]) {
    const r = loadConfigText(config(`  otlp: ${otlp}`), FILE, {})
    t.ok(r.ok, otlp)
    t.same(r.ok && r.gateway.tracing, { endpoint, serviceName: 'portcullis' }, otlp)
  }
  const r = loadConfigText(config('  otlp: http://127.0.0.1:4318\n  serviceName: edge-gw'), FILE, {})
  t.same(r.ok && r.gateway.tracing, { endpoint: 'http://127.0.0.1:4318/v1/traces', serviceName: 'edge-gw' })
})

t.test('a bad otlp URL is an error at tracing.otlp, FILE:LINE:COL', async (t) => {
  for (const otlp of ['127.0.0.1:4318', 'not a url', 'ftp://127.0.0.1/x', 'http://user:pw@127.0.0.1:4318', 'http://127.0.0.1:4318/?a=b']) {
    const r = loadConfigText(config(`  otlp: "${otlp}"`), FILE, {})
    t.notOk(r.ok, otlp)
    const text = r.ok ? '' : r.errors.map(formatFinding).join('\n')
    t.match(text, /^\/etc\/portcullis\/gateway\.yaml:7:\d+: error: tracing\.otlp: must be an http:\/\/ or https:\/\/ URL/m, otlp)
    t.notOk(text.includes('pw@'), 'the URL userinfo is not echoed')
  }
})

t.test('an unknown key under tracing, or a missing otlp, is an error', async (t) => {
  const unknown = loadConfigText(config('  otlp: http://127.0.0.1:4318\n  sampler: always'), FILE, {})
  t.notOk(unknown.ok)
  t.match(unknown.ok ? '' : unknown.errors.map(formatFinding).join('\n'), /gateway\.yaml:8:\d+: error: .*sampler/)
  const missing = loadConfigText(config('  serviceName: x'), FILE, {})
  t.notOk(missing.ok)
  t.match(missing.ok ? '' : missing.errors.map(formatFinding).join('\n'), /gateway\.yaml:\d+:\d+: error: .*otlp/)
})
