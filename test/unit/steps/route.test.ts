// Steps 1 and 2 (DESIGN §3): the canonical-path check before any policy, the join endpoint matched
// before the routes, 404 / 405 with Allow, and a declared body over bodyLimit refused (413, close).
import t from 'tap'
import { checkDeclaredSize, checkPath, findRoute } from '../../../src/steps/route.js'
import { JOIN_PATH, exchangeFor, fakeRequest, testRuntime } from './fakes.js'

t.test('checkPath: non-canonical targets are BAD_PATH, before any route is looked up', async (t) => {
  const rt = await testRuntime()
  for (const url of ['/%61dmin', '/%41dmin', '/admin/%2e%2e/x', '/a/../admin', '/./admin', '/a%2Fb', '/a%5cb', '/a\\b', '//admin', '/admin;x=1', 'http://gw.test/admin', '/a%7Eb', '/a%2db', '/a%5Fb', '/a\u0001b']) {
    const { x } = exchangeFor(rt, fakeRequest({ url }))
    t.same(checkPath(x, x.req!), { code: 'BAD_PATH' }, url)
    t.equal(x.route, undefined, `${url}: no route`)
  }
})

t.test('checkPath: a canonical target sets path and query exactly as received', async (t) => {
  const rt = await testRuntime()
  const { x } = exchangeFor(rt, fakeRequest({ url: '/admin?a=%2e%2e/../x&b' }))
  t.equal(checkPath(x, x.req!), undefined)
  t.equal(x.path, '/admin')
  t.equal(x.query, '?a=%2e%2e/../x&b', 'the query is not path-checked')
  t.equal(x.target, '/admin?a=%2e%2e/../x&b')
})

t.test('findRoute: the join path is the join route, even though a public prefix route covers it', async (t) => {
  const rt = await testRuntime()
  const { x } = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  t.equal(checkPath(x, x.req!), undefined)
  t.equal(findRoute(x), undefined)
  t.equal(x.route?.id, JOIN_PATH)
  t.equal(x.route?.upstream, null, 'answered locally, never forwarded')
  t.equal(x.route?.public, false)

  const other = exchangeFor(rt, fakeRequest({ method: 'POST', url: '/_portcullis/other' })).x
  checkPath(other, other.req!)
  t.equal(findRoute(other), undefined)
  t.equal(other.route?.id, '/_portcullis/', 'the prefix route still gets the rest of its paths')
})

t.test('findRoute: the join path with GET (or an upgrade GET) is 405 with Allow: POST', async (t) => {
  const rt = await testRuntime()
  for (const headers of [[], [['connection', 'upgrade'], ['upgrade', 'websocket']]] as Array<Array<[string, string]>>) {
    const { x } = exchangeFor(rt, fakeRequest({ method: 'GET', url: JOIN_PATH, headers }))
    checkPath(x, x.req!)
    t.same(findRoute(x), { code: 'METHOD_NOT_ALLOWED', headers: { allow: 'POST' } })
    t.equal(x.route?.id, JOIN_PATH, 'the audit line names the join route')
  }
})

t.test('findRoute: NO_ROUTE and METHOD_NOT_ALLOWED with Allow', async (t) => {
  const rt = await testRuntime()
  const none = exchangeFor(rt, fakeRequest({ url: '/nowhere' })).x
  checkPath(none, none.req!)
  t.same(findRoute(none), { code: 'NO_ROUTE' })
  t.equal(none.route, undefined)

  const wrong = exchangeFor(rt, fakeRequest({ method: 'DELETE', url: '/admin' })).x
  checkPath(wrong, wrong.req!)
  const d = findRoute(wrong)
  t.equal(d?.code, 'METHOD_NOT_ALLOWED')
  t.same(String(d?.headers?.['allow']).split(/,\s*/).sort(), ['GET', 'POST'])

  const post = exchangeFor(rt, fakeRequest({ method: 'PUT', url: '/work' })).x
  checkPath(post, post.req!)
  t.same(findRoute(post), { code: 'METHOD_NOT_ALLOWED', headers: { allow: 'POST' } })

  const ok = exchangeFor(rt, fakeRequest({ url: '/admin' })).x
  checkPath(ok, ok.req!)
  t.equal(findRoute(ok), undefined)
  t.equal(ok.route?.id, '/admin')
})

t.test('checkDeclaredSize: Content-Length over bodyLimit is 413 and closes; at the limit passes', async (t) => {
  const rt = await testRuntime()
  const limit = rt.gateway.server.bodyLimit
  t.equal(limit, 1024)
  const over = exchangeFor(rt, fakeRequest({ method: 'POST', url: '/admin', headers: [['content-length', String(limit + 1)]] })).x
  t.same(checkDeclaredSize(over, over.req!), { code: 'BODY_TOO_LARGE', close: true })
  const at = exchangeFor(rt, fakeRequest({ method: 'POST', url: '/admin', headers: [['content-length', String(limit)]] })).x
  t.equal(checkDeclaredSize(at, at.req!), undefined)
  const none = exchangeFor(rt, fakeRequest({ method: 'POST', url: '/admin', headers: [['transfer-encoding', 'chunked']] })).x
  t.equal(checkDeclaredSize(none, none.req!), undefined, 'a chunked body is bounded while it is read, not here')
})
