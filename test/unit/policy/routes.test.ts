// Route matching (DESIGN §2): `:name` is one segment, a trailing `*` the rest, `prefix:` matches at a
// segment boundary; first match wins; a path known only under other methods is 405 with Allow.
import t from 'tap'
import type tap from 'tap'
import { compilePathMatcher, matchRoute, type Routable } from '../../../src/policy/routes.js'

function check(t: Pick<typeof tap, 'equal'>, spec: { path?: string; prefix?: string }, yes: string[], no: string[]): void {
  const m = compilePathMatcher(spec)
  for (const p of yes) t.equal(m.matches(p), true, `${JSON.stringify(spec)} matches ${p}`)
  for (const p of no) t.equal(m.matches(p), false, `${JSON.stringify(spec)} does not match ${p}`)
}

t.test('prefix: /pools/ matches /pools/ and below, not /pools nor /poolsx', async (t) => {
  check(t, { prefix: '/pools/' }, ['/pools/', '/pools/a', '/pools/a/b/c'], ['/pools', '/poolsx', '/poolsx/a', '/pool', '/', '/other/pools/'])
})

t.test('prefix: /pools matches /pools and below, not /poolsx', async (t) => {
  check(t, { prefix: '/pools' }, ['/pools', '/pools/', '/pools/a', '/pools/a/b'], ['/poolsx', '/poolsx/a', '/pool', '/', '/x/pools'])
})

t.test('prefix: / matches every path', async (t) => {
  check(t, { prefix: '/' }, ['/', '/a', '/a/b/'], [])
})

t.test('path: exact, :name is one segment, trailing * is the rest', async (t) => {
  check(t, { path: '/health' }, ['/health'], ['/health/', '/healthz', '/health/x', '/'])
  check(
    t,
    { path: '/v2/nodes/:id/heartbeat' },
    ['/v2/nodes/n1/heartbeat', '/v2/nodes/a%20b/heartbeat'],
    ['/v2/nodes/heartbeat', '/v2/nodes/a/b/heartbeat', '/v2/nodes/n1/heartbeat/x', '/v2/nodes/n1/heartbeatx', '/v2/nodes/n1'],
  )
  check(t, { path: '/files/*' }, ['/files/a', '/files/a/b/c'], ['/filesx/a', '/other/files/a'])
  check(t, { path: '/v1.0/:id' }, ['/v1.0/a'], ['/v1x0/a', '/v1.0/a/b'])
})

t.test('the matcher id is the path or prefix as written', async (t) => {
  t.equal(compilePathMatcher({ prefix: '/pools/' }).id, '/pools/')
  t.equal(compilePathMatcher({ path: '/v2/nodes/:id/heartbeat' }).id, '/v2/nodes/:id/heartbeat')
})

interface R extends Routable {
  name: string
}
const route = (name: string, spec: { path?: string; prefix?: string }, methods?: string[]): R => ({
  name,
  matcher: compilePathMatcher(spec),
  methods: methods ? new Set(methods) : null,
})

t.test('matchRoute: first match wins, 405 with the union of allowed methods, 404 otherwise', async (t) => {
  const routes = [
    route('get-health', { path: '/health' }, ['GET']),
    route('put-health', { path: '/health' }, ['PUT', 'DELETE']),
    route('pools', { prefix: '/pools/' }),
    route('pool-one', { path: '/pools/:id' }, ['GET']),
    route('any-admin', { prefix: '/admin' }, ['POST']),
    route('admin-all', { path: '/admin/:x' }),
  ]
  const name = (m: ReturnType<typeof matchRoute<R>>) => (m.kind === 'route' ? m.route.name : m.kind)
  t.equal(name(matchRoute(routes, 'GET', '/health')), 'get-health')
  t.equal(name(matchRoute(routes, 'DELETE', '/health')), 'put-health')
  t.same(matchRoute(routes, 'POST', '/health'), { kind: 'method', allow: ['DELETE', 'GET', 'PUT'] })
  t.equal(name(matchRoute(routes, 'GET', '/pools/p1')), 'pools', 'the earlier, wider route wins')
  t.equal(name(matchRoute(routes, 'GET', '/admin/x')), 'admin-all', 'a later route with all methods matches after a method miss')
  t.same(matchRoute(routes, 'GET', '/admin'), { kind: 'method', allow: ['POST'] })
  t.same(matchRoute(routes, 'GET', '/nothing'), { kind: 'none' })
  t.same(matchRoute(routes, 'GET', '/pools'), { kind: 'none' }, '/pools is not under prefix /pools/')
})
