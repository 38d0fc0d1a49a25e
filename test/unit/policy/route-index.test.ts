// The route index (issue 12): a lookup tries only the routes that could match — not every route, so its
// cost does not grow with the route count — and always answers what a linear first-match scan answers
// (same route, same 405 Allow), whatever the mix of exact paths, parameters, `*` and prefixes.
import t from 'tap'
import fc from 'fast-check'
import { compilePathMatcher, matchRoute, type PathMatcher, type Routable, type RouteMatch } from '../../../src/policy/routes.js'

interface R extends Routable { n: number }

function route(n: number, spec: { path?: string; prefix?: string }, methods: string[] | null = null): R {
  return { n, matcher: compilePathMatcher(spec), methods: methods ? new Set(methods) : null }
}

/** The reference: the linear scan the index replaces. */
function linear(routes: readonly R[], method: string, path: string): RouteMatch<R> {
  let allow: Set<string> | undefined
  for (const r of routes) {
    if (!r.matcher.matches(path)) continue
    if (r.methods === null || r.methods.has(method)) return { kind: 'route', route: r }
    allow ??= new Set()
    for (const m of r.methods) allow.add(m)
  }
  return allow ? { kind: 'method', allow: [...allow].sort() } : { kind: 'none' }
}

function counting(routes: R[]): { routes: R[]; calls: () => number } {
  let calls = 0
  const wrapped = routes.map((r) => {
    const m = r.matcher
    const matcher: PathMatcher = { ...m, matches: (p: string) => (calls++, m.matches(p)) }
    return { ...r, matcher }
  })
  return { routes: wrapped, calls: () => calls }
}

t.test('route lookup: the 100th route is found after trying at most 2, not 100', async (t) => {
  const list: R[] = []
  for (let i = 0; i < 100; i++) list.push(i % 2 ? route(i, { path: `/svc${i}` }) : route(i, { path: `/svc${i}/items/:id` }))
  const { routes, calls } = counting(list)
  const a = matchRoute(routes, 'GET', '/svc99')
  t.equal(a.kind === 'route' && a.route.n, 99)
  const b = matchRoute(routes, 'GET', '/svc98/items/7')
  t.equal(b.kind === 'route' && b.route.n, 98)
  t.equal(matchRoute(routes, 'GET', '/nowhere').kind, 'none')
  t.ok(calls() <= 2, `${calls()} matcher calls for three lookups among 100 routes`)
})

t.test('route lookup: first match wins across exact, segment and catch-all routes', async (t) => {
  const routes = [
    route(0, { prefix: '/api/' }, ['POST']),
    route(1, { path: '/api/health' }),
    route(2, { path: '/:any/health' }),
    route(3, { prefix: '/' }),
  ]
  const m = (path: string, method = 'GET') => {
    const r = matchRoute(routes, method, path)
    return r.kind === 'route' ? r.route.n : r.kind === 'method' ? r.allow.join(',') : 'none'
  }
  t.equal(m('/api/health', 'POST'), 0, 'the prefix comes first for POST')
  t.equal(m('/api/health'), 1, 'the exact path next for GET')
  t.equal(m('/x/health'), 2)
  t.equal(m('/api/other'), 3, 'the catch-all, after the prefix refuses GET')
  t.same(matchRoute([route(0, { prefix: '/api/' }, ['POST']), route(1, { path: '/api/:x' }, ['PUT'])], 'GET', '/api/a'), { kind: 'method', allow: ['POST', 'PUT'] })
})

t.test('route lookup: the index answers as the linear scan does (property)', async (t) => {
  const seg = fc.constantFrom('a', 'b', 'api', 'v1.0', 'x%20y', 'pools')
  const specSeg = fc.oneof(seg, fc.constant(':id'))
  const spec = fc.oneof(
    fc.array(specSeg, { minLength: 1, maxLength: 3 }).map((s) => ({ path: '/' + s.join('/') })),
    fc.array(specSeg, { minLength: 0, maxLength: 2 }).map((s) => ({ path: '/' + [...s, '*'].join('/') })),
    fc.tuple(fc.array(seg, { minLength: 0, maxLength: 2 }), fc.boolean()).map(([s, slash]) => ({ prefix: '/' + s.join('/') + (slash && s.length ? '/' : '') })),
  )
  const methods = fc.option(fc.subarray(['GET', 'POST', 'PUT'], { minLength: 1 }), { nil: null })
  const path = fc.oneof(
    fc.array(seg, { minLength: 0, maxLength: 4 }).map((s) => '/' + s.join('/')),
    fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => '/' + s.join('/') + '/'),
  )
  fc.assert(
    fc.property(fc.array(fc.tuple(spec, methods), { minLength: 1, maxLength: 12 }), path, fc.constantFrom('GET', 'POST', 'DELETE'), (specs, p, method) => {
      const routes = specs.map(([s, ms], n) => route(n, s, ms))
      const got = matchRoute(routes, method, p)
      const want = linear(routes, method, p)
      if (got.kind !== want.kind) return false
      if (got.kind === 'route' && want.kind === 'route') return got.route === want.route
      if (got.kind === 'method' && want.kind === 'method') return got.allow.join() === want.allow.join()
      return true
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 random route lists agree with the linear scan')
})
