// The metrics listener: one decision → the DESIGN §6 series with bounded labels; the credential gauge
// keyed by fingerprint and bounded in series; the replay gauge read at scrape time.
import t from 'tap'
import { createMetrics, NO_ROUTE_LABEL } from '../../../src/observe/metrics.js'
import type { AuditRecord } from '../../../src/observe/audit.js'

function record(over: Partial<AuditRecord> = {}): AuditRecord {
  return {
    event: 'allow',
    reqId: 'r1',
    method: 'GET',
    path: '/pools/p-17/status',
    route: '/pools/',
    identity: 'orchestratord',
    authMethod: 'bearer',
    fp: 'token:abc123',
    reason: null,
    ip: '127.0.0.1',
    status: 200,
    upstream: 'pool-manager',
    ms: 3.2,
    ...over,
  }
}

t.test('an allowed request: requests, decisions, upstream duration and last-used', async (t) => {
  const m = createMetrics({ defaultMetrics: false })
  m.listener.decision(record(), { upstreamMs: 42 })
  const text = await m.text()
  t.match(text, 'portcullis_requests_total{route="/pools/",method="GET",status="200"} 1')
  t.match(text, 'portcullis_auth_decisions_total{route="/pools/",auth_method="bearer",result="allow",reason=""} 1')
  t.match(text, 'portcullis_upstream_duration_seconds_bucket{le="0.05",upstream="pool-manager",route="/pools/"} 1')
  t.match(text, 'portcullis_upstream_duration_seconds_bucket{le="0.025",upstream="pool-manager",route="/pools/"} 0')
  t.match(text, /portcullis_credential_last_used_timestamp_seconds\{identity="orchestratord",fingerprint="token:abc123"\} \d+/)
  t.notMatch(text, 'p-17', 'the request path is never a label')
  t.notMatch(text, /^process_/m, 'default metrics off when asked')
})

t.test('denials: reason codes, no route, rate limits by what was counted', async (t) => {
  const m = createMetrics({ defaultMetrics: false })
  m.listener.decision(record({ event: 'deny', route: null, identity: null, authMethod: null, fp: null, reason: 'NO_ROUTE', status: 404, upstream: null }))
  m.listener.decision(record({ event: 'deny', identity: null, fp: 'token:ffffff', reason: 'INVALID_CREDENTIALS', status: 401 }))
  m.listener.decision(record({ event: 'ratelimit', reason: 'RATE_LIMITED', status: 429 }), { limitedBy: 'identity' })
  m.listener.decision(record({ event: 'ratelimit', identity: null, authMethod: null, fp: null, reason: 'RATE_LIMITED', status: 429 }), { limitedBy: 'authFailures' })
  m.listener.decision(record({ event: 'replay', authMethod: 'signed', fp: 'key:0a0b0c', identity: 'worker-7', reason: 'REPLAYED', status: 401 }))
  m.listener.decision(record({ event: 'allow', reason: 'UPSTREAM_TIMEOUT', status: 504 }), { upstreamMs: 30_000 })
  const text = await m.text()
  t.match(text, `portcullis_requests_total{route="${NO_ROUTE_LABEL}",method="GET",status="404"} 1`)
  t.match(text, `portcullis_auth_decisions_total{route="${NO_ROUTE_LABEL}",auth_method="none",result="deny",reason="NO_ROUTE"} 1`)
  t.match(text, 'portcullis_auth_decisions_total{route="/pools/",auth_method="bearer",result="deny",reason="INVALID_CREDENTIALS"} 1')
  t.match(text, 'portcullis_rate_limited_total{route="/pools/",by="identity"} 1')
  t.match(text, 'portcullis_rate_limited_total{route="/pools/",by="authFailures"} 1')
  t.match(text, 'portcullis_auth_decisions_total{route="/pools/",auth_method="signed",result="deny",reason="REPLAYED"} 1')
  t.match(text, 'portcullis_requests_total{route="/pools/",method="GET",status="504"} 1')
  t.match(text, 'portcullis_auth_decisions_total{route="/pools/",auth_method="bearer",result="allow",reason=""} 1', 'an upstream failure is still an allowed auth decision')
  t.match(text, 'portcullis_upstream_duration_seconds_bucket{le="+Inf",upstream="pool-manager",route="/pools/"} 1')
  t.notMatch(text, 'token:ffffff', 'a refused credential is not a used one')
  t.match(text, 'fingerprint="key:0a0b0c"', 'a replayed signature was made with a valid key')
})

t.test('config reload counter starts at zero for both results', async (t) => {
  const m = createMetrics({ defaultMetrics: false })
  t.match(await m.text(), 'portcullis_config_reloads_total{result="ok"} 0')
  m.configReload('error')
  m.configReload('ok')
  m.configReload('ok')
  const text = await m.text()
  t.match(text, 'portcullis_config_reloads_total{result="ok"} 2')
  t.match(text, 'portcullis_config_reloads_total{result="error"} 1')
})

t.test('replay cache gauge reads the store at scrape time, and survives a failing store', async (t) => {
  let size = 7
  let fail = false
  const m = createMetrics({
    defaultMetrics: false,
    replay: { kind: 'redis', size: async () => (fail ? Promise.reject(new Error('down')) : size) },
  })
  t.match(await m.text(), 'portcullis_replay_cache_entries{store="redis"} 7')
  size = 9
  t.match(await m.text(), 'portcullis_replay_cache_entries{store="redis"} 9')
  fail = true
  t.match(await m.text(), 'portcullis_replay_cache_entries{store="redis"} 9', 'keeps the last value, the scrape does not fail')
})

t.test('credential series are bounded: the least recently used goes first', async (t) => {
  const m = createMetrics({ defaultMetrics: false, credentialSeriesLimit: 3 })
  for (const fp of ['token:000001', 'token:000002', 'token:000003']) m.listener.decision(record({ fp }))
  m.listener.decision(record({ fp: 'token:000001' })) // used again: now the most recent
  m.listener.decision(record({ fp: 'token:000004' }))
  const text = await m.text()
  t.notMatch(text, 'token:000002', 'the least recently used series was dropped')
  for (const fp of ['token:000001', 'token:000003', 'token:000004']) t.match(text, `fingerprint="${fp}"`)
})

t.test('public and loopback requests carry no fingerprint: no credential series', async (t) => {
  const m = createMetrics({ defaultMetrics: false })
  m.listener.decision(record({ identity: 'anonymous', authMethod: 'public', fp: null }))
  t.notMatch(await m.text(), /portcullis_credential_last_used_timestamp_seconds\{/)
})

t.test('default process metrics are on by default', async (t) => {
  const m = createMetrics()
  const text = await m.text()
  t.match(text, /^process_cpu_user_seconds_total /m)
  t.match(text, /^nodejs_eventloop_lag_seconds /m)
})

t.test('build info: 1, labelled with the package version and the Node version', async (t) => {
  const { VERSION } = await import('../../../src/version.js')
  t.match(VERSION, /^\d+\.\d+\.\d+/)
  const text = await createMetrics({ defaultMetrics: false }).text()
  t.match(text, `portcullis_build_info{version="${VERSION}",node="${process.version}"} 1`)
})

t.test('last successful reload: set at start, moved by an ok reload, not by a failed one', async (t) => {
  const m = createMetrics({ defaultMetrics: false })
  const stamp = async () => Number(/^portcullis_config_last_reload_success_timestamp_seconds ([0-9.e+]+)$/m.exec(await m.text())?.[1])
  const atStart = await stamp()
  t.ok(Math.abs(atStart - Date.now() / 1000) < 3600, 'a Unix time in seconds')
  await new Promise((r) => setTimeout(r, 20))
  m.configReload('error')
  t.equal(await stamp(), atStart, 'a failed reload leaves it')
  m.configReload('ok')
  t.ok((await stamp()) > atStart, 'an ok reload moves it')
})

t.test('request duration and in-flight: counted from trackResponse until the response closes', async (t) => {
  const { EventEmitter } = await import('node:events')
  const { performance } = await import('node:perf_hooks')
  const m = createMetrics({ defaultMetrics: false })
  const a = new EventEmitter()
  const b = new EventEmitter()
  m.trackResponse(a, '/pools/', 'POST', performance.now() - 40)
  m.trackResponse(b, '/pools/', 'POST', performance.now())
  m.trackResponse(new EventEmitter(), null, 'GET', performance.now())
  let text = await m.text()
  t.match(text, 'portcullis_requests_in_flight{route="/pools/"} 2')
  t.match(text, `portcullis_requests_in_flight{route="${NO_ROUTE_LABEL}"} 1`)
  t.notMatch(text, /portcullis_request_duration_seconds_count\{route="\/pools\/"/, 'nothing observed before the end')
  a.emit('close')
  text = await m.text()
  t.match(text, 'portcullis_requests_in_flight{route="/pools/"} 1')
  t.match(text, 'portcullis_request_duration_seconds_count{route="/pools/",method="POST"} 1')
  t.match(text, 'portcullis_request_duration_seconds_bucket{le="0.025",route="/pools/",method="POST"} 0', 'measured from arrival (40 ms ago)')
  b.emit('close')
  b.emit('close')
  text = await m.text()
  t.match(text, 'portcullis_requests_in_flight{route="/pools/"} 0', 'a second close does not count twice')
  t.match(text, 'portcullis_request_duration_seconds_count{route="/pools/",method="POST"} 2')
  const gone = Object.assign(new EventEmitter(), { destroyed: true })
  m.trackResponse(gone, '/gone', 'GET', performance.now())
  text = await m.text()
  t.notMatch(text, /portcullis_requests_in_flight\{route="\/gone"\} [1-9]/, 'an exchange already closed is not left in flight')
  t.match(text, 'portcullis_request_duration_seconds_count{route="/gone",method="GET"} 1')
})

t.test('a reload drops the last-used series of credentials the config no longer names', async (t) => {
  const { configuredFingerprints } = await import('../../../src/observe/credential-fingerprints.js')
  const { tokenFingerprint, keyFingerprint, fullFingerprint } = await import('../../../src/auth/credential.js')
  const OLD = 'old-token-0123456789abcdef0123456789abcdef'
  const NEW = 'new-token-0123456789abcdef0123456789abcdef'
  const STORED = 'stored-key-0123456789abcdef0123456789abcdef'
  process.env.PC_METRICS_OLD = OLD
  process.env.PC_METRICS_NEW = NEW
  t.teardown(() => {
    delete process.env.PC_METRICS_OLD
    delete process.env.PC_METRICS_NEW
  })
  const before = configuredFingerprints({
    identities: [{ name: 'ops', bearer: ['${env:PC_METRICS_OLD}', '${env:PC_METRICS_NEW}'], apiKey: fullFingerprint(STORED) }],
    schemes: { signed: { type: 'rfc9421', keys: { 'worker-7': '${env:PC_METRICS_NEW}', 'worker-8': '${env:PC_METRICS_NEW}' } } } as never,
  })
  t.same([...before].sort(), [tokenFingerprint(OLD), tokenFingerprint(NEW), tokenFingerprint(STORED), keyFingerprint('worker-7'), keyFingerprint('worker-8')].sort())
  const after = configuredFingerprints({
    identities: [{ name: 'ops', bearer: '${env:PC_METRICS_NEW}', apiKey: fullFingerprint(STORED) }],
    schemes: { signed: { type: 'rfc9421', keys: { 'worker-7': '${env:PC_METRICS_NEW}' } } } as never,
  })
  const m = createMetrics({ defaultMetrics: false, credentials: before })
  for (const fp of [tokenFingerprint(OLD), tokenFingerprint(NEW), tokenFingerprint(STORED), keyFingerprint('worker-7'), keyFingerprint('worker-8'), 'token:jwt123'])
    m.listener.decision(record({ fp }))
  m.configReload('error', after)
  t.match(await m.text(), `fingerprint="${tokenFingerprint(OLD)}"`, 'a failed reload changes nothing')
  m.configReload('ok', after)
  const text = await m.text()
  t.notMatch(text, `fingerprint="${tokenFingerprint(OLD)}"`, 'the rotated-out token is gone')
  t.notMatch(text, `fingerprint="${keyFingerprint('worker-8')}"`, 'the removed key id is gone')
  for (const fp of [tokenFingerprint(NEW), tokenFingerprint(STORED), keyFingerprint('worker-7')]) t.match(text, `fingerprint="${fp}"`, `${fp} still configured: kept`)
  t.match(text, 'fingerprint="token:jwt123"', 'a credential the config never named (a JWT) is left to the series bound')
  for (const s of [OLD, NEW, STORED]) t.notMatch(text, s, 'no secret in the exposition')
})

t.test('credential series: the kept set is always the most recently used ones (against a reference LRU)', async (t) => {
  const limit = 5
  const m = createMetrics({ defaultMetrics: false, credentialSeriesLimit: limit })
  const reference: string[] = [] // oldest first
  let seed = 7
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31)
  for (let i = 0; i < 400; i++) {
    const identity = `id${next() % 4}`
    const fp = `token:${String(next() % 4).padStart(6, '0')}`
    const key = `${identity} ${fp}`
    m.listener.decision(record({ identity, fp }))
    const at = reference.indexOf(key)
    if (at !== -1) reference.splice(at, 1)
    reference.push(key)
    if (reference.length > limit) reference.shift()
  }
  const text = await m.text()
  const kept = [...text.matchAll(/portcullis_credential_last_used_timestamp_seconds\{identity="([^"]+)",fingerprint="([^"]+)"\}/g)].map((x) => `${x[1]} ${x[2]}`)
  t.same(kept.sort(), [...reference].sort())
})
