// The admin listener (DESIGN §6): /healthz, /readyz, /metrics on their own port, every metric of the
// table present after traffic, label values bounded (config routes, codes, fingerprints — never a token),
// and the proxy port never serving these paths.
import t from 'tap'
import { request } from 'node:http'
import { runCli, startBackend, startGateway, testSecret } from './harness.js'

const TOKEN = testSecret('ops-bearer')
const KEY = testSecret('ops-apikey')
const WRONG = testSecret('ops-wrong')

function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(base + path, { agent: false, headers, timeout: 10_000 }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

t.test('admin endpoints, every metric after traffic, fingerprints not tokens', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
upstreams:
  app: { url: ${backend.url}, timeout: 5s }
identities:
  - name: operator
    roles: [ops]
    bearer: ["\${env:OPS_ADMIN_TOKEN}"]
  - name: dashboard
    roles: [reader]
    apiKey: "\${env:OPS_ADMIN_KEY}"
routes:
  - path: /health
    upstream: app
    public: true
  - prefix: /work/
    methods: [GET]
    upstream: app
    auth: [bearer, apiKey]
    roles: [ops]
  - path: /once
    upstream: app
    auth: [bearer]
    rateLimit: { max: 1, window: 1m, by: identity }
`,
    { OPS_ADMIN_TOKEN: TOKEN, OPS_ADMIN_KEY: KEY },
  )
  t.teardown(() => gw.stop('SIGKILL'))
  t.ok(gw.adminUrl, 'the listening line names the admin URL')
  t.match(gw.adminUrl!, /^http:\/\/127\.0\.0\.1:\d+$/)

  t.equal((await get(gw.adminUrl!, '/healthz')).status, 200, '/healthz')
  const ready = await get(gw.adminUrl!, '/readyz')
  t.equal(ready.status, 200, '/readyz with the memory store')
  t.equal((await get(gw.adminUrl!, '/jwks.json')).status, 404, '/jwks.json is 404 without an assertion key')
  t.equal((await get(gw.adminUrl!, '/nope')).status, 404)

  // Traffic: allowed, forbidden, wrong token, missing, no route, wrong method, rate limited, public.
  const bearer = { authorization: `Bearer ${TOKEN}` }
  t.equal((await get(gw.url, '/work/a/b/c', bearer)).status, 200)
  t.equal((await get(gw.url, '/work/x', { 'x-api-key': KEY })).status, 403)
  t.equal((await get(gw.url, '/work/x', { authorization: `Bearer ${WRONG}` })).status, 401)
  t.equal((await get(gw.url, '/work/x')).status, 401)
  t.equal((await get(gw.url, '/somewhere/else')).status, 404)
  t.equal((await get(gw.url, '/health')).status, 200)
  t.equal((await get(gw.url, '/once', bearer)).status, 200)
  t.equal((await get(gw.url, '/once', bearer)).status, 429)
  // The proxy port never serves the admin paths: they are just unmatched routes there.
  for (const path of ['/metrics', '/healthz', '/readyz', '/jwks.json']) {
    const r = await get(gw.url, path)
    t.equal(r.status, 404, `proxy ${path} is 404`)
    t.match(r.body, /NO_ROUTE/)
  }

  const m = await get(gw.adminUrl!, '/metrics')
  t.equal(m.status, 200)
  t.match(String(m.headers['content-type']), /^text\/plain/)
  const text = m.body
  for (const name of [
    'portcullis_requests_total',
    'portcullis_auth_decisions_total',
    'portcullis_rate_limited_total',
    'portcullis_upstream_duration_seconds',
    'portcullis_replay_cache_entries',
    'portcullis_config_reloads_total',
    'portcullis_credential_last_used_timestamp_seconds',
  ]) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`)
  t.match(text, /^# TYPE portcullis_upstream_duration_seconds histogram/m)
  t.match(text, /^# TYPE portcullis_replay_cache_entries gauge/m)
  t.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics')
  t.match(text, /^nodejs_heap_size_total_bytes /m)

  t.match(text, 'portcullis_requests_total{route="/work/",method="GET",status="200"} 1')
  t.match(text, 'portcullis_requests_total{route="(none)",method="GET",status="404"}', 'no route → route="(none)"')
  t.notMatch(text, /\/work\/a\/b\/c|\/somewhere\/else/, 'request paths never become labels')
  t.match(text, 'portcullis_auth_decisions_total{route="/work/",auth_method="bearer",result="allow",reason=""} 1')
  t.match(text, 'portcullis_auth_decisions_total{route="/work/",auth_method="apiKey",result="deny",reason="FORBIDDEN"} 1')
  t.match(text, /portcullis_auth_decisions_total\{route="\/work\/",auth_method="[^"]*",result="deny",reason="INVALID_CREDENTIALS"\} 1/)
  t.match(text, /portcullis_auth_decisions_total\{route="\/work\/",auth_method="[^"]*",result="deny",reason="MISSING_CREDENTIALS"\} 1/)
  t.match(text, 'portcullis_auth_decisions_total{route="/health",auth_method="public",result="allow",reason=""} 1')
  t.match(text, 'portcullis_rate_limited_total{route="/once",by="identity"} 1')
  t.match(text, /portcullis_upstream_duration_seconds_count\{upstream="app",route="\/work\/"\} 1/)
  t.match(text, 'portcullis_replay_cache_entries{store="memory"} 0')
  t.match(text, 'portcullis_config_reloads_total{result="ok"} 0')
  t.match(text, 'portcullis_config_reloads_total{result="error"} 0')

  // The rotation gauge: labelled by the fingerprint that `portcullis fingerprint` prints for the token.
  const fp = (await runCli(['fingerprint', TOKEN])).stdout.trim()
  t.match(fp, /^token:[0-9a-f]{6}$/)
  const keyFp = (await runCli(['fingerprint', KEY])).stdout.trim()
  const gauge = new RegExp(`^portcullis_credential_last_used_timestamp_seconds\\{identity="operator",fingerprint="${fp}"\\} ([0-9.]+)$`, 'm').exec(text)
  t.ok(gauge, 'last-used gauge for the operator token, by fingerprint')
  t.ok(Math.abs(Number(gauge?.[1]) - Date.now() / 1000) < 60, 'its value is a recent Unix time in seconds')
  t.match(text, `portcullis_credential_last_used_timestamp_seconds{identity="dashboard",fingerprint="${keyFp}"}`, 'a valid key denied by roles was still used')
  const wrongFp = (await runCli(['fingerprint', WRONG])).stdout.trim()
  t.notMatch(text, `fingerprint="${wrongFp}"`, 'a wrong token never counts as a used credential')

  for (const secret of [TOKEN, KEY, WRONG]) {
    t.notOk(text.includes(secret), 'no credential in /metrics')
    t.notOk(gw.output().includes(secret), 'no credential in the logs')
  }
})
