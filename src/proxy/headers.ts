// Header hygiene for forwarding (DESIGN §3.6): hop-by-hop and Connection-named headers go first,
// then every client-sent x-auth-* (any case, `_` for `-`), then credentials; identity is set last.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Identity } from '../auth/types.js'

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
])

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name)
}

/** Names listed in Connection (lower-cased), which are hop-by-hop for this message only. */
export function connectionNamed(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined
  const names = new Set<string>()
  for (const part of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
    const n = part.trim().toLowerCase()
    if (n) names.add(n)
  }
  return names
}

/** `x-auth-identity`, `X_Auth_Identity`, `x-auth_identity`… all count as identity headers. */
export function isIdentityHeaderName(name: string): boolean {
  return name.length >= 7 && name.slice(0, 7).replace(/_/g, '-') === 'x-auth-'
}

export interface ForwardHeaderOptions {
  /** Lower-cased credential header names to drop, or null to keep them. */
  strip: ReadonlySet<string> | null
  identity?: Identity
  setIdentityHeaders: boolean
  /** Keep `Upgrade` / `Connection: upgrade` (websocket routes only). */
  upgrade: boolean
  host: string
  forwardedFor: string
  proto: 'http' | 'https'
  /** Set after all stripping: e.g. x-auth-assertion. */
  extra?: Record<string, string>
}

export function forwardHeaders(incoming: IncomingHttpHeaders, o: ForwardHeaderOptions): OutgoingHttpHeaders {
  const named = connectionNamed(incoming.connection)
  const out: OutgoingHttpHeaders = {}
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue
    if (isIdentityHeaderName(name)) continue
    if (o.strip?.has(name)) continue
    if (name === 'host' || name === 'x-forwarded-for' || name === 'x-forwarded-proto' || name === 'x-forwarded-host') continue
    // The gateway's own server already answered `Expect: 100-continue`; undici refuses to send it on.
    if (name === 'expect') continue
    out[name] = incoming[name]
  }
  out['host'] = o.host
  out['x-forwarded-for'] = o.forwardedFor
  out['x-forwarded-proto'] = o.proto
  if (incoming.host !== undefined) out['x-forwarded-host'] = incoming.host
  if (o.upgrade) {
    out['connection'] = 'upgrade'
    out['upgrade'] = incoming.upgrade
  }
  if (o.identity && o.setIdentityHeaders) {
    out['x-auth-identity'] = o.identity.name
    out['x-auth-method'] = o.identity.method
    out['x-auth-roles'] = o.identity.roles.join(',')
    out['x-auth-fingerprint'] = o.identity.fp
  }
  if (o.extra) Object.assign(out, o.extra)
  return out
}

/** Response headers from an upstream, minus hop-by-hop ones. */
export function responseHeaders(incoming: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const named = connectionNamed(incoming.connection)
  const out: OutgoingHttpHeaders = {}
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue
    out[name] = incoming[name]
  }
  return out
}
