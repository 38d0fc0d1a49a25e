// Route matching: first match wins; a path known under other methods is a 405 with Allow.
// Matches the raw (canonical, still percent-encoded) path; compiled once per config. The lookup never
// scans every route: an index by exact path and by first segment hands over only the routes that could
// match, in config order, so the answer is the one a linear first-match scan gives.

export interface PathMatcher {
  /** As written in the config; the `route` log field and metric label. */
  readonly id: string
  matches(path: string): boolean
  /** Set when only this exact path matches. */
  readonly exact?: string
  /** Set when every path this matches has this first segment (the text after the leading `/` up to the next). */
  readonly firstSegment?: string
}

/** The first segment of a spec that is literal and complete (followed by `/`, or the whole of a prefix). */
function literalFirstSegment(spec: string, wholeCounts: boolean): string | undefined {
  if (!spec.startsWith('/')) return undefined
  const end = spec.indexOf('/', 1)
  const seg = end < 0 ? (wholeCounts ? spec.slice(1) : undefined) : spec.slice(1, end)
  if (seg === undefined || seg === '' || seg.startsWith(':') || seg === '*') return undefined
  return seg
}

/** `path:` with `:name` (one segment) and a trailing `*` (the rest), or `prefix:` at a segment boundary. */
export function compilePathMatcher(spec: { path?: string; prefix?: string }): PathMatcher {
  if (spec.prefix !== undefined) {
    const prefix = spec.prefix
    // `/pools/` covers `/pools/` and below only; `/pools` also covers `/pools` itself. Neither `/poolsx`.
    const firstSegment = literalFirstSegment(prefix, !prefix.endsWith('/'))
    const seg = firstSegment !== undefined ? { firstSegment } : {}
    if (prefix.endsWith('/')) return { id: prefix, matches: (path) => path.startsWith(prefix), ...seg }
    return {
      id: prefix,
      matches: (path) => path === prefix || path.startsWith(prefix + '/'),
      ...seg,
    }
  }
  const pattern = spec.path!
  const segments = pattern.split('/')
  const hasParam = segments.some((s) => s.startsWith(':') || s === '*')
  if (!hasParam) return { id: pattern, matches: (path) => path === pattern, exact: pattern }
  const source = segments
    .map((s, i) => {
      if (s === '*' && i === segments.length - 1) return '.*'
      if (s.startsWith(':')) return '[^/]+'
      return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  const re = new RegExp(`^${source}$`)
  const firstSegment = literalFirstSegment(pattern, false)
  return { id: pattern, matches: (path) => re.test(path), ...(firstSegment !== undefined ? { firstSegment } : {}) }
}

export interface Routable {
  matcher: PathMatcher
  /** Upper-case methods, or null for all. */
  methods: ReadonlySet<string> | null
}

export type RouteMatch<R> = { kind: 'route'; route: R } | { kind: 'method'; allow: string[] } | { kind: 'none' }

/** Config positions of the routes that can match, by exact path and by first segment; the rest scanned always. */
interface RouteIndex {
  exact: Map<string, number[]>
  bySegment: Map<string, number[]>
  always: number[]
}

const NONE: readonly number[] = []
// One index per compiled route list (a reload compiles a new list, and the old index goes with it).
const indexes = new WeakMap<readonly Routable[], RouteIndex>()

function indexOf(routes: readonly Routable[]): RouteIndex {
  let index = indexes.get(routes)
  if (index) return index
  index = { exact: new Map(), bySegment: new Map(), always: [] }
  routes.forEach((route, position) => {
    const m = route.matcher
    const push = (map: Map<string, number[]>, key: string) => {
      const list = map.get(key)
      if (list) list.push(position)
      else map.set(key, [position])
    }
    if (m.exact !== undefined) push(index!.exact, m.exact)
    else if (m.firstSegment !== undefined) push(index!.bySegment, m.firstSegment)
    else index!.always.push(position)
  })
  indexes.set(routes, index)
  return index
}

function firstSegmentOf(path: string): string | undefined {
  if (path.charCodeAt(0) !== 47 /* / */) return undefined
  const end = path.indexOf('/', 1)
  return end < 0 ? path.slice(1) : path.slice(1, end)
}

export function matchRoute<R extends Routable>(routes: readonly R[], method: string, path: string): RouteMatch<R> {
  const index = indexOf(routes)
  const a = index.exact.get(path) ?? NONE
  const seg = firstSegmentOf(path)
  const b = (seg !== undefined ? index.bySegment.get(seg) : undefined) ?? NONE
  const c = index.always
  let allow: Set<string> | undefined
  // the three candidate lists are each in config order: merge them so the first match still wins
  let i = 0
  let j = 0
  let k = 0
  for (;;) {
    const pa = i < a.length ? a[i]! : Infinity
    const pb = j < b.length ? b[j]! : Infinity
    const pc = k < c.length ? c[k]! : Infinity
    const p = Math.min(pa, pb, pc)
    if (p === Infinity) break
    if (p === pa) i++
    else if (p === pb) j++
    else k++
    const route = routes[p]!
    if (!route.matcher.matches(path)) continue
    if (route.methods === null || route.methods.has(method)) return { kind: 'route', route }
    allow ??= new Set()
    for (const m of route.methods) allow.add(m)
  }
  return allow ? { kind: 'method', allow: [...allow].sort() } : { kind: 'none' }
}
