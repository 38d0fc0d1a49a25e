// Route matching: first match wins; a path known under other methods is a 405 with Allow.
// Matches the raw (canonical, still percent-encoded) path; compiled once per config.

export interface PathMatcher {
  /** As written in the config; the `route` log field and metric label. */
  readonly id: string
  matches(path: string): boolean
}

/** `path:` with `:name` (one segment) and a trailing `*` (the rest), or `prefix:` at a segment boundary. */
export function compilePathMatcher(spec: { path?: string; prefix?: string }): PathMatcher {
  if (spec.prefix !== undefined) {
    const prefix = spec.prefix
    // `/pools/` covers `/pools/` and below only; `/pools` also covers `/pools` itself. Neither `/poolsx`.
    if (prefix.endsWith('/')) return { id: prefix, matches: (path) => path.startsWith(prefix) }
    return {
      id: prefix,
      matches: (path) => path === prefix || path.startsWith(prefix + '/'),
    }
  }
  const pattern = spec.path!
  const segments = pattern.split('/')
  const hasParam = segments.some((s) => s.startsWith(':') || s === '*')
  if (!hasParam) return { id: pattern, matches: (path) => path === pattern }
  const source = segments
    .map((s, i) => {
      if (s === '*' && i === segments.length - 1) return '.*'
      if (s.startsWith(':')) return '[^/]+'
      return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  const re = new RegExp(`^${source}$`)
  return { id: pattern, matches: (path) => re.test(path) }
}

export interface Routable {
  matcher: PathMatcher
  /** Upper-case methods, or null for all. */
  methods: ReadonlySet<string> | null
}

export type RouteMatch<R> = { kind: 'route'; route: R } | { kind: 'method'; allow: string[] } | { kind: 'none' }

export function matchRoute<R extends Routable>(routes: readonly R[], method: string, path: string): RouteMatch<R> {
  let allow: Set<string> | undefined
  for (const route of routes) {
    if (!route.matcher.matches(path)) continue
    if (route.methods === null || route.methods.has(method)) return { kind: 'route', route }
    allow ??= new Set()
    for (const m of route.methods) allow.add(m)
  }
  return allow ? { kind: 'method', allow: [...allow].sort() } : { kind: 'none' }
}
