// `portcullis check`'s lints over a compiled config (DESIGN §1): shadowed routes, worker-v1 in use,
// plain-text non-loopback listeners, trustProxy wider than a private range, `loopback: allow` behind a
// trusted loopback proxy.
import ipaddr from 'ipaddr.js'
import { parseTrustEntry } from '../state/client-ip.js'
import type { CompiledRoute, Gateway } from './compile.js'
import type { Finding } from './load.js'

export interface Lint {
  severity: 'error' | 'warning'
  /** A path into the config for the position (['routes', 3]). */
  path: (string | number)[]
  message: string
}

/** Sample request paths a route matches, to test whether an earlier route catches all of them. */
function samples(route: CompiledRoute): string[] {
  const id = route.id
  if (route.spec.prefix !== undefined) {
    const bare = id.endsWith('/') ? id.slice(0, -1) : id
    return [bare + '/', bare + '/x', bare + '/x/y'].concat(id.endsWith('/') ? [] : [bare])
  }
  const fill = (v: string) => id.split('/').map((s, i, all) => (s.startsWith(':') ? v : s === '*' && i === all.length - 1 ? `${v}/${v}` : s)).join('/')
  return [fill('x'), fill('portcullis-lint')]
}

function methodsCovered(earlier: CompiledRoute, later: CompiledRoute): boolean {
  if (earlier.methods === null) return true
  if (later.methods === null) return false
  return [...later.methods].every((m) => earlier.methods!.has(m))
}

export function lintShadowing(routes: readonly CompiledRoute[]): Lint[] {
  const out: Lint[] = []
  routes.forEach((later, j) => {
    for (const earlier of routes.slice(0, j)) {
      if (!methodsCovered(earlier, later)) continue
      if (!samples(later).every((p) => earlier.matcher.matches(p))) continue
      const what = earlier.public ? 'public route' : 'route'
      out.push({
        severity: later.public ? 'warning' : 'error',
        path: ['routes', later.index],
        message: `route "${later.id}" is shadowed by the earlier ${what} "${earlier.id}" (routes[${earlier.index}]): first match wins, so it never applies`,
      })
      break
    }
  })
  return out
}

// Private ranges (RFC 1918, loopback, unique-local IPv6): a trusted proxy normally sits inside one.
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8', 'fc00::/7', '::1/128'].map((cidr) => ipaddr.parseCIDR(cidr))

/** Parsed as config loading parses it (IPv4-mapped read as IPv4), so `::ffff:10.0.0.0/104` is 10.0.0.0/8. */
function widerThanPrivate(entry: string): boolean {
  const parsed = parseTrustEntry(entry)
  if (!parsed.ok) return true
  const [address, prefix] = parsed.range
  return !PRIVATE.some(([net, bits]) => address.kind() === net.kind() && prefix >= bits && address.match(net, bits))
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

export function lintGateway(gw: Gateway): Lint[] {
  const out = lintShadowing(gw.routes)
  for (const [name, spec] of Object.entries(gw.raw.schemes ?? {})) {
    if (spec.type === 'worker-v1') {
      const used = gw.routes.some((r) => r.auth.some((a) => a.name === name || a.members?.some((m) => m.name === name)))
      out.push({
        severity: 'warning',
        path: ['schemes', name, 'type'],
        message: `scheme "${name}" is worker-v1${used ? ' and in use' : ''}: the method, path and body of its requests are not signed; prefer rfc9421`,
      })
    }
  }
  if (!gw.server.tls && !isLoopbackHost(gw.server.listen.host)) {
    out.push({ severity: 'warning', path: ['server', 'listen'], message: `listens on ${gw.server.listen.host} (not loopback) without TLS: credentials cross the network in clear` })
  }
  for (const route of gw.routes) {
    if (route.enforce !== 'report') continue
    const path: (string | number)[] = route.spec.enforce === undefined ? ['defaults', 'enforce'] : ['routes', route.index, 'enforce']
    out.push({ severity: 'warning', path, message: `route ${route.id} is in enforce: report: refusals are logged, not sent; every request is forwarded (run \`portcullis report\` on its audit lines, then switch to enforce: on)` })
  }
  const tp = gw.server.trustProxy
  if (tp === true) out.push({ severity: 'warning', path: ['server', 'trustProxy'], message: 'trustProxy: true believes X-Forwarded-For from any peer; list your proxies\' private CIDRs instead' })
  else if (Array.isArray(tp)) {
    tp.forEach((cidr, i) => {
      if (widerThanPrivate(cidr)) out.push({ severity: 'warning', path: ['server', 'trustProxy', i], message: `trustProxy entry ${cidr} is wider than a private range` })
    })
  }
  // A proxy on this host makes every client it forwards look like loopback at the socket.
  const loopbackTrusted = gw.server.trusted('127.0.0.1') || gw.server.trusted('::1')
  if (loopbackTrusted) {
    for (const r of gw.routes) {
      if (!r.loopbackAllow) continue
      out.push({
        severity: 'warning',
        path: ['routes', r.index, 'loopback'],
        message: `route "${r.id}" has loopback: allow while server.trustProxy holds a loopback address: requests a local proxy forwards come from the loopback socket and pass as "localhost"`,
      })
    }
  }
  return out
}

/** The lints as findings at their FILE:LINE:COL: what `check` prints and `serve` / reload log as `warnings`. */
export function lintFindings(gw: Gateway, position: (path: (string | number)[]) => { line: number; col: number }): Finding[] {
  return lintGateway(gw).map((l) => ({ file: gw.file, ...position(l.path), severity: l.severity, message: l.message }))
}
