// The admin listener on its own: status codes of /healthz, /readyz, /metrics, /jwks.json and the rest.
import t from 'tap'
import { startAdminServer } from '../../../src/admin/server.js'
import { createMetrics } from '../../../src/observe/metrics.js'

async function get(url: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const r = await fetch(url, { method, signal: AbortSignal.timeout(5000) })
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() }
}

t.test('health, readiness, metrics, jwks hook', async (t) => {
  let notReady: string | undefined
  let jwks: object | undefined
  const admin = await startAdminServer({
    listen: { host: '127.0.0.1', port: 0 },
    metrics: createMetrics({ defaultMetrics: false }),
    notReady: () => notReady,
    jwks: () => jwks,
  })
  t.teardown(() => admin.close())
  t.match(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/)

  t.equal((await get(admin.url + '/healthz')).status, 200)
  t.equal((await get(admin.url + '/readyz')).status, 200)
  notReady = 'state store unreachable'
  const r = await get(admin.url + '/readyz')
  t.equal(r.status, 503)
  t.same(JSON.parse(r.body), { status: 'not ready', reason: 'state store unreachable' })
  t.equal((await get(admin.url + '/healthz')).status, 200, 'alive even when not ready')

  const m = await get(admin.url + '/metrics')
  t.equal(m.status, 200)
  t.match(m.type, /^text\/plain; version=0\.0\.4/)
  t.match(m.body, 'portcullis_config_reloads_total')

  t.equal((await get(admin.url + '/jwks.json')).status, 404, '404 until a key exists')
  jwks = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'k1' }] }
  const j = await get(admin.url + '/jwks.json')
  t.equal(j.status, 200)
  t.same(JSON.parse(j.body), jwks)

  t.equal((await get(admin.url + '/metrics?x=1')).status, 200, 'a query string is ignored')
  t.equal((await get(admin.url + '/other')).status, 404)
  t.equal((await get(admin.url + '/healthz', 'POST')).status, 405)
  t.equal((await get(admin.url + '/healthz', 'HEAD')).status, 200)
})

t.test('without a jwks hook /jwks.json is 404', async (t) => {
  const admin = await startAdminServer({ listen: { host: '127.0.0.1', port: 0 }, metrics: createMetrics({ defaultMetrics: false }), notReady: () => undefined })
  t.teardown(() => admin.close())
  t.equal((await get(admin.url + '/jwks.json')).status, 404)
})

t.test('a port in use is an error at start', async (t) => {
  const first = await startAdminServer({ listen: { host: '127.0.0.1', port: 0 }, metrics: createMetrics({ defaultMetrics: false }), notReady: () => undefined })
  t.teardown(() => first.close())
  const port = Number(new URL(first.url).port)
  await t.rejects(startAdminServer({ listen: { host: '127.0.0.1', port }, metrics: createMetrics({ defaultMetrics: false }), notReady: () => undefined }), { code: 'EADDRINUSE' })
})
