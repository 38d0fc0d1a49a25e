// The report's aggregation: which lines are audit lines, per-route counts and verdicts, clients by
// identity or ip, merging replicas, the bounded client list and the JSON document's shape.
import t from 'tap'
import { parseAuditLine, ReportBuilder } from '../../../src/observe/report.js'

const T0 = Date.UTC(2026, 11, 1, 8, 0, 0)

function line(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    level: 30,
    time: T0,
    pid: 7,
    hostname: 'gw-1',
    event: 'allow',
    reqId: 'r1',
    method: 'GET',
    path: '/pools/p-17/status',
    route: '/pools/',
    identity: 'orchestratord',
    authMethod: 'bearer',
    fp: 'token:abc123',
    reason: null,
    ip: '10.0.0.2',
    status: 200,
    upstream: 'pool-manager',
    ms: 3.2,
    msg: 'auth',
    ...over,
  })
}
const wouldRefuse = (reason: string, over: Record<string, unknown> = {}) => line({ event: 'report', reason, identity: null, authMethod: null, fp: null, ...over })

t.test('only audit lines count: banners, other loggers, other pino lines and broken JSON are skipped', async (t) => {
  const b = new ReportBuilder()
  const noise = [
    '> portcullis@1.4.0 start',
    '> node dist/src/cli/main.js serve',
    'npm WARN config production Use `--omit=dev` instead.',
    '{"level":30,"time":1,"msg":"listening","port":8080}',
    '{"level":30,"msg":"config.reload","event":"allow","route":"/pools/","ip":"1.2.3.4"}',
    line().slice(0, 80),
    '[{"msg":"auth"}]',
    '"auth"',
    'null',
    line({ event: 'granted' }),
    line({ reason: 'NOT_A_CODE', event: 'deny' }),
    line({ route: 42 }),
    line({ ip: undefined }),
    line({ identity: { name: 'x' } }),
    '2026-12-01T08:00:00Z INFO other-service {"msg":"auth"}',
  ]
  for (const l of noise) b.addLine(l)
  b.addLine(line())
  b.addLine('  ' + line({ reqId: 'r2' }))
  const rep = b.result()
  t.same(rep.lines, { audit: 2, skipped: noise.length })
  t.equal(rep.routes.length, 1)
  t.equal(rep.routes[0]!.requests, 2)
  t.equal(parseAuditLine(line({ msg: 'request completed' })), null, 'a pino line whose msg is not "auth"')
})

t.test('per route: requests, would-be refusals by reason, clients by identity or ip, verdict', async (t) => {
  const b = new ReportBuilder()
  for (let i = 0; i < 5; i++) b.addLine(line({ reqId: `a${i}` }))
  for (let i = 0; i < 3; i++) b.addLine(wouldRefuse('MISSING_CREDENTIALS', { ip: '10.0.0.3', time: T0 + i * 1000 }))
  b.addLine(wouldRefuse('INVALID_SIGNATURE', { ip: '10.0.0.4', claimed: 'node-17', authMethod: 'worker-v1', fp: 'key:0f0f0f' }))
  b.addLine(wouldRefuse('FORBIDDEN', { identity: 'catalog', authMethod: 'bearer', fp: 'token:c47a10', ip: '10.0.0.5' }))
  b.addLine(wouldRefuse('FORBIDDEN', { identity: 'catalog', authMethod: 'bearer', fp: 'token:c47a10', ip: '10.0.0.6' }))
  b.addLine(line({ route: '/catalog/', identity: 'orchestratord' }))
  const rep = b.result()
  t.same(
    rep.routes.map((r) => [r.route, r.requests, r.verdict, r.enforce]),
    [
      ['/catalog/', 1, 'ready', 'unknown'],
      ['/pools/', 11, 'not ready', 'report'],
    ],
  )
  const pools = rep.routes[1]!
  t.same(pools.events, { allow: 5, deny: 0, ratelimit: 0, replay: 0, report: 6 })
  t.same(pools.wouldRefuse, { MISSING_CREDENTIALS: 3, FORBIDDEN: 2, INVALID_SIGNATURE: 1 })
  t.same(Object.keys(pools.wouldRefuse), ['MISSING_CREDENTIALS', 'FORBIDDEN', 'INVALID_SIGNATURE'], 'largest first')
  t.same(pools.clients, [
    { ip: '10.0.0.3', fp: null, reason: 'MISSING_CREDENTIALS', count: 3, last: new Date(T0 + 2000).toISOString() },
    { identity: 'catalog', fp: 'token:c47a10', reason: 'FORBIDDEN', count: 2, last: new Date(T0).toISOString() },
    { ip: '10.0.0.4', fp: 'key:0f0f0f', claimed: 'node-17', reason: 'INVALID_SIGNATURE', count: 1, last: new Date(T0).toISOString() },
  ])
  t.same(pools.unlistedClients, {})
  t.same(pools.refused, {})
})

t.test('actual refusals are listed apart and say the route is enforced; route null is "unmatched"', async (t) => {
  const b = new ReportBuilder()
  b.addLine(line({ event: 'deny', reason: 'INVALID_CREDENTIALS', identity: null, fp: 'token:dead00', status: 401 }))
  b.addLine(line({ event: 'ratelimit', reason: 'RATE_LIMITED', status: 429 }))
  b.addLine(line({ route: '/upload/', event: 'deny', reason: 'BODY_TOO_LARGE', status: 413 }))
  b.addLine(line({ route: '/upload/', event: 'allow', reason: 'UPSTREAM_UNAVAILABLE', status: 502 }))
  b.addLine(line({ route: '/mixed/', event: 'deny', reason: 'MISSING_CREDENTIALS', identity: null, fp: null, status: 401 }))
  b.addLine(line({ route: '/mixed/', event: 'report', reason: 'MISSING_CREDENTIALS', identity: null, fp: null, status: 200 }))
  b.addLine(line({ route: null, event: 'deny', reason: 'NO_ROUTE', identity: null, status: 404 }))
  b.addLine(line({ route: null, event: 'deny', reason: 'NO_ROUTE', identity: null, status: 404 }))
  b.addLine(line({ route: null, method: null, path: null, event: 'deny', reason: 'BAD_REQUEST', identity: null, status: 400 }))
  const rep = b.result()
  const by = Object.fromEntries(rep.routes.map((r) => [r.route, r]))
  t.same(Object.keys(by), ['/mixed/', '/pools/', '/upload/'], 'route null is not a route')
  t.equal(by['/pools/']!.enforce, 'on')
  t.equal(by['/pools/']!.verdict, 'ready', 'the verdict is about would-be refusals only')
  t.same(by['/pools/']!.refused, { INVALID_CREDENTIALS: 1, RATE_LIMITED: 1 })
  t.same(
    by['/pools/']!.refusedClients.map((c) => [c.reason, c.identity ?? c.ip, c.fp]),
    [
      ['INVALID_CREDENTIALS', '10.0.0.2', 'token:dead00'],
      ['RATE_LIMITED', 'orchestratord', 'token:abc123'],
    ],
  )
  t.equal(by['/upload/']!.enforce, 'unknown', 'a 413 is enforced on every route: no evidence either way')
  t.same(by['/upload/']!.refused, { BODY_TOO_LARGE: 1 }, 'an upstream failure of an allowed request is no refusal')
  t.equal(by['/mixed/']!.enforce, 'mixed')
  t.equal(by['/mixed/']!.verdict, 'not ready')
  t.same(rep.unmatched, { requests: 3, refused: { NO_ROUTE: 2, BAD_REQUEST: 1 } })
  t.equal(rep.lines.audit, 9)
})

t.test('logs of several replicas merge: counts add up, one client across replicas is one row', async (t) => {
  const b = new ReportBuilder()
  const replicaA = [wouldRefuse('MISSING_CREDENTIALS', { ip: '10.0.0.3', time: T0 + 5000, hostname: 'gw-a' }), line({ hostname: 'gw-a' })]
  const replicaB = [wouldRefuse('MISSING_CREDENTIALS', { ip: '10.0.0.3', time: T0 - 5000, hostname: 'gw-b' }), line({ hostname: 'gw-b' })]
  for (const l of [...replicaA, ...replicaB]) b.addLine(l)
  const rep = b.result()
  t.equal(rep.routes.length, 1)
  t.equal(rep.routes[0]!.requests, 4)
  t.same(rep.routes[0]!.clients, [{ ip: '10.0.0.3', fp: null, reason: 'MISSING_CREDENTIALS', count: 2, last: new Date(T0 + 5000).toISOString() }])
  t.same(rep.period, { from: new Date(T0 - 5000).toISOString(), to: new Date(T0 + 5000).toISOString() })
})

t.test('the client list is bounded: top N by count, the rest summed, memory capped under a flood of distinct clients', async (t) => {
  const b = new ReportBuilder({ topClients: 3, trackedClients: 50 })
  let total = 0
  let peak = 0
  for (let i = 0; i < 20_000; i++) {
    // one misconfigured node every 10th line, another every 25th, and a guesser with a fresh token each time
    if (i % 10 === 0) b.addLine(wouldRefuse('INVALID_CREDENTIALS', { ip: '10.0.0.9', fp: 'token:111111' }))
    else if (i % 25 === 0) b.addLine(wouldRefuse('INVALID_CREDENTIALS', { ip: '10.0.0.8', fp: 'token:222222' }))
    else b.addLine(wouldRefuse('INVALID_CREDENTIALS', { ip: '192.0.2.1', fp: `token:${i.toString(16).padStart(6, '0')}` }))
    total++
    peak = Math.max(peak, b.trackedClientEntries)
  }
  t.ok(peak <= 50, `at most 50 clients tracked at any time (peak ${peak})`)
  const r = b.result().routes[0]!
  t.equal(r.wouldRefuse.INVALID_CREDENTIALS, total)
  t.equal(r.clients.length, 3, 'only the top 3 listed')
  t.same(
    r.clients.slice(0, 2).map((c) => [c.ip, c.fp, c.count]),
    [
      ['10.0.0.9', 'token:111111', 2000],
      ['10.0.0.8', 'token:222222', 400],
    ],
    'the clients that keep failing are listed with their exact counts',
  )
  const listed = r.clients.reduce((s, c) => s + c.count, 0)
  t.equal(r.unlistedClients.INVALID_CREDENTIALS, total - listed, 'the rest is summed')
  t.equal(r.countsApproximate, true, 'the report says the bound was hit')
})

t.test('without a flood the counts are exact and not flagged approximate', async (t) => {
  const b = new ReportBuilder({ topClients: 2, trackedClients: 10 })
  for (let i = 0; i < 5; i++) for (let n = 0; n <= i; n++) b.addLine(wouldRefuse('MISSING_CREDENTIALS', { ip: `10.0.1.${i}` }))
  const r = b.result().routes[0]!
  t.same(
    r.clients.map((c) => [c.ip, c.count]),
    [
      ['10.0.1.4', 5],
      ['10.0.1.3', 4],
    ],
  )
  t.same(r.unlistedClients, { MISSING_CREDENTIALS: 1 + 2 + 3 })
  t.equal(r.countsApproximate, false)
})

t.test('the number of routes is bounded too: lines of routes beyond the cap are counted as skipped', async (t) => {
  const b = new ReportBuilder({ maxRoutes: 3 })
  for (let i = 0; i < 10; i++) b.addLine(line({ route: `/r${i}/` }))
  const rep = b.result()
  t.equal(rep.routes.length, 3)
  t.same(rep.lines, { audit: 3, skipped: 7 })
})

t.test('a huge field value is cut, so one line cannot make an entry big', async (t) => {
  const f = parseAuditLine(wouldRefuse('INVALID_SIGNATURE', { claimed: 'x'.repeat(10_000) }))
  t.equal(f?.claimed?.length, 256)
  t.equal(parseAuditLine(line({ route: '/' + 'a'.repeat(1000) })), null, 'a route longer than any config route is no audit line')
})

t.test('JSON shape: one document with routes, unmatched, lines and period', async (t) => {
  const b = new ReportBuilder()
  b.addLine(wouldRefuse('TOKEN_EXPIRED', { identity: null, claimed: 'jwt:svc', fp: 'token:777777', ip: '10.0.0.7' }))
  b.addLine(line())
  const rep = JSON.parse(JSON.stringify(b.result()))
  t.same(rep, {
    routes: [
      {
        route: '/pools/',
        requests: 2,
        enforce: 'report',
        events: { allow: 1, deny: 0, ratelimit: 0, replay: 0, report: 1 },
        wouldRefuse: { TOKEN_EXPIRED: 1 },
        clients: [{ ip: '10.0.0.7', fp: 'token:777777', claimed: 'jwt:svc', reason: 'TOKEN_EXPIRED', count: 1, last: new Date(T0).toISOString() }],
        unlistedClients: {},
        refused: {},
        refusedClients: [],
        unlistedRefusedClients: {},
        countsApproximate: false,
        verdict: 'not ready',
      },
    ],
    unmatched: { requests: 0, refused: {} },
    lines: { audit: 2, skipped: 0 },
    period: { from: new Date(T0).toISOString(), to: new Date(T0).toISOString() },
  })
  t.same(new ReportBuilder().result(), { routes: [], unmatched: { requests: 0, refused: {} }, lines: { audit: 0, skipped: 0 }, period: { from: null, to: null } }, 'empty input: an empty report')
})
