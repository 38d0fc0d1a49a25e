// Header hygiene for forwarding (DESIGN §3.6): hop-by-hop and Connection-named headers go first,
// then every client-sent x-auth-* (any case, `_` for `-`), then forwarding headers a client could forge
// unless the peer is a trusted proxy, then credentials; identity and forwarding headers are set last.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Identity } from '../auth/types.js'

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'http2-settings',
])

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name)
}

const CLOSE_ONLY: ReadonlySet<string> = new Set(['close'])

/** Names listed in Connection (lower-cased), which are hop-by-hop for this message only. */
export function connectionNamed(connection: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (connection === undefined) return undefined
  // The usual values, without splitting: keep-alive is hop-by-hop already; close stays a name to drop.
  if (connection === 'keep-alive' || connection === 'Keep-Alive') return undefined
  if (connection === 'close' || connection === 'Close') return CLOSE_ONLY
  const names = new Set<string>()
  for (const part of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
    const n = part.trim().toLowerCase()
    if (n) names.add(n)
  }
  return names
}

/** `x-auth-identity`, `X_Auth_Identity`, `x-auth_identity`… all count as identity headers. */
export function isIdentityHeaderName(name: string): boolean {
  return name.length >= 7 && name.charCodeAt(0) === 0x78 && name.slice(0, 7).replace(/_/g, '-') === 'x-auth-'
}

/**
 * Headers that tell a backend who the client is or which URL it asked for: believed only from a peer
 * in trustProxy. Names normalized (lower case, `_` read as `-`), since backends behind CGI-style
 * stacks read `X_Forwarded_For` as `X-Forwarded-For`.
 */
export function isForwardingHeaderName(name: string): boolean {
  return isForwardingName(normalizedName(name))
}

/** Lower case, `_` read as `-` (the common all-lower-case, dash-only name is returned as is). */
function normalizedName(name: string): string {
  const n = name.toLowerCase()
  return n.indexOf('_') === -1 ? n : n.replace(/_/g, '-')
}

function isForwardingName(n: string): boolean {
  return n.startsWith('x-forwarded-') || n === 'forwarded' || n === 'x-real-ip' || n === 'x-original-url' || n === 'x-rewrite-url'
}

/** Set by the gateway itself on every forwarded request: never taken from the client under any spelling. */
const SET_BY_GATEWAY = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id'])

export interface ForwardHeaderOptions {
  /** Lower-cased credential header names to drop, or null to keep them. */
  strip: ReadonlySet<string> | null
  identity?: Identity
  setIdentityHeaders: boolean
  /** Keep `Upgrade` / `Connection: upgrade` (websocket routes only). */
  upgrade: boolean
  host: string
  /** The socket peer's address. */
  forwardedFor: string
  /** The peer is in trustProxy: its forwarding headers are kept and its X-Forwarded-For chain extended. */
  trustedPeer?: boolean
  proto: 'http' | 'https'
  /** The audit line's reqId, sent as x-request-id (replacing any the client sent). */
  requestId?: string
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
    const n = normalizedName(name)
    if (SET_BY_GATEWAY.has(n)) continue
    // An underscore spelling is never what a trusted proxy sends: it is dropped from every peer.
    if (isForwardingName(n) && (!o.trustedPeer || n !== name)) continue
    // The gateway's own server already answered `Expect: 100-continue`; undici refuses to send it on.
    if (name === 'expect') continue
    out[name] = incoming[name]
  }
  out['host'] = o.host
  const chain = o.trustedPeer ? incoming['x-forwarded-for'] : undefined
  const prior = Array.isArray(chain) ? chain.join(', ') : chain
  out['x-forwarded-for'] = prior && prior.trim() ? `${prior}, ${o.forwardedFor}` : o.forwardedFor
  out['x-forwarded-proto'] = o.proto
  // A trusted proxy's x-forwarded-host (kept above) names the host its client asked for.
  if (incoming.host !== undefined && out['x-forwarded-host'] === undefined) out['x-forwarded-host'] = incoming.host
  if (o.requestId !== undefined) out['x-request-id'] = o.requestId
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

/**
 * An upstream's response headers (undici gives the raw name/value pairs) as the flat `[name, value, …]` list
 * Node's `writeHead` takes: names lower-cased, hop-by-hop and Connection-named headers left out, a repeated
 * name's lines kept in their order. A list rather than an object: no dictionary of names to build per
 * response, and no name (`__proto__` included) is special.
 */
export function upstreamHeaders(raw: Buffer[]): string[] {
  const out: string[] = []
  let connection: string[] | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase()
    const value = raw[i + 1]!.toString('latin1')
    if (name === 'connection') (connection ??= []).push(value)
    if (isHopByHop(name)) continue
    out.push(name, value)
  }
  // One Connection line (the usual `keep-alive` or `close`) goes to connectionNamed as a string, which
  // answers those without splitting: a Node upstream's `Connection: keep-alive` then costs no second copy.
  const named = connection && connectionNamed(connection.length === 1 ? connection[0] : connection)
  return named ? withoutNames(out, named) : out
}

/** `headers` (a flat name/value list) with every line of the given lower-case names left out. */
function withoutNames(headers: string[], names: ReadonlySet<string>): string[] {
  const kept: string[] = []
  for (let i = 0; i < headers.length; i += 2) if (!names.has(headers[i]!)) kept.push(headers[i]!, headers[i + 1]!)
  return kept
}

/** Sets `name` (lower case) in a flat name/value list: any line of that name the upstream sent is replaced. */
export function replaceHeader(headers: string[], name: string, value: string): void {
  for (let i = 0; i < headers.length; ) {
    if (headers[i] === name) headers.splice(i, 2)
    else i += 2
  }
  headers.push(name, value)
}
