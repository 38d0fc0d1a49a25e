// Turns a validated gateway.yaml into what the request path uses: digests of secrets, route matchers,
// per-route authenticators and limits. Runs once per load; nothing on the request path re-reads config.
import { isIP } from 'node:net'
import type { GatewayConfigFile, RouteFile } from './schema.js'
import { durationMs, sizeBytes, type CompileContext, type ConfigPath } from './types.js'
import { isReference, isStoredDigest, resolveReference } from './secrets.js'
import { compilePathMatcher, type Routable } from '../policy/routes.js'
import type { Authenticator } from '../auth/types.js'
import { CredentialTable } from '../auth/static-credentials.js'
import { createBearerAuthenticator } from '../auth/bearer.js'
import { createApiKeyAuthenticator, DEFAULT_API_KEY_HEADER } from '../auth/api-key.js'
import { SCHEME_FACTORIES } from '../auth/registry.js'
import { IDENTITY_METHOD_FACTORIES } from '../auth/identity-methods.js'
import { compileJoin, type JoinEndpoint } from '../auth/join.js'
import { assertionKeyProblem } from '../proxy/assertion.js'
import { compileState, type CompiledState } from './state.js'

export interface Listen {
  host: string
  port: number
}

export interface Upstream {
  name: string
  /** scheme://host:port — one keep-alive pool per origin. */
  origin: string
  /** A path prefix from the upstream URL ('' for none) put in front of the forwarded path. */
  basePath: string
  timeoutMs: number
}

export interface RateLimitPolicy {
  max: number
  windowMs: number
  by: 'identity' | 'ip'
}

export interface CompiledRoute extends Routable {
  index: number
  /** The path or prefix as written: the `route` log field and metric label. */
  id: string
  upstream: Upstream
  public: boolean
  auth: readonly Authenticator[]
  /** The WWW-Authenticate value of a 401 on this route. */
  challenge: string
  /** The message of a 401 MISSING_CREDENTIALS on this route. */
  missingMessage: string
  roles: ReadonlySet<string> | null
  rateLimit: RateLimitPolicy | null
  websocket: boolean
  loopbackAllow: boolean
  credentials: 'strip' | 'keep'
  identityHeaders: boolean
  position: { line: number; col: number }
  spec: RouteFile
}

export interface Gateway {
  file: string
  raw: GatewayConfigFile
  server: {
    listen: Listen
    bodyLimit: number
    shutdownGraceMs: number
    trustProxy: boolean | string[]
    tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer }
  }
  admin?: { listen: Listen }
  state: CompiledState
  upstreams: ReadonlyMap<string, Upstream>
  routes: readonly CompiledRoute[]
  /** Every authenticator by the name routes use (bearer, apiKey, mtls, scheme names). */
  authenticators: ReadonlyMap<string, Authenticator>
  /** Header names of every credential portcullis recognizes, dropped before forwarding unless kept. */
  credentialHeaders: readonly string[]
  /** API-key header names (for ambiguity: two of them present). */
  apiKeyHeaders: readonly string[]
  defaults: { rateLimit: RateLimitPolicy | null; authFailures: { max: number; windowMs: number } | null }
  forward: { identityHeaders: boolean; credentials: 'strip' | 'keep'; assertion?: { keyPem: string; ttlMs: number } }
  /** DESIGN §4.7: POST <join.path>, answered before route matching. */
  join?: JoinEndpoint
}

export function parseListen(value: string): Listen | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(value)
  if (!m) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  const host = m[1] ?? (m[2] || '0.0.0.0')
  if (m[1] && isIP(m[1]) !== 6) return undefined
  return { host, port }
}

const WORKER_V1_HEADERS = ['x-worker-id', 'x-worker-timestamp', 'x-worker-signature']
const SIGNATURE_HEADERS = ['signature', 'signature-input']

function rateLimitPolicy(spec: { max: number; window: string | number; by?: 'identity' | 'ip' } | false | undefined): RateLimitPolicy | null | undefined {
  if (spec === undefined) return undefined
  if (spec === false) return null
  return { max: spec.max, windowMs: durationMs(spec.window), by: spec.by ?? 'identity' }
}

export function compileGateway(
  raw: GatewayConfigFile,
  ctx: CompileContext,
  env: NodeJS.ProcessEnv,
  positionOf: (path: ConfigPath) => { line: number; col: number },
): Gateway {
  const server = raw.server!
  const listen = parseListen(server.listen!)
  if (!listen) ctx.error(['server', 'listen'], 'must be host:port, e.g. 127.0.0.1:8080 or "[::1]:8080"')
  let tls: Gateway['server']['tls']
  if (server.tls) {
    const cert = ctx.readFile(['server', 'tls', 'cert'], server.tls.cert)
    const key = ctx.readFile(['server', 'tls', 'key'], server.tls.key)
    const clientCa = server.tls.clientCa ? ctx.readFile(['server', 'tls', 'clientCa'], server.tls.clientCa) : undefined
    if (cert && key) tls = { cert, key, ...(clientCa ? { clientCa } : {}) }
  }
  let admin: Gateway['admin']
  if (raw.admin) {
    const a = parseListen(raw.admin.listen ?? '127.0.0.1:9901')
    if (!a) ctx.error(['admin', 'listen'], 'must be host:port, e.g. 127.0.0.1:9901')
    else if (listen && a.port !== 0 && a.port === listen.port) ctx.error(['admin', 'listen'], 'must not be the proxy port (server.listen): the admin endpoints never share it')
    else admin = { listen: a }
  }

  const state = compileState(raw.state!, ctx, env)

  const upstreams = new Map<string, Upstream>()
  for (const [name, spec] of Object.entries(raw.upstreams)) {
    let url: URL | undefined
    try {
      url = new URL(spec.url)
    } catch {
      url = undefined
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username) {
      ctx.error(['upstreams', name, 'url'], 'must be an http:// or https:// URL without query, fragment or credentials')
      continue
    }
    upstreams.set(name, { name, origin: url.origin, basePath: url.pathname.replace(/\/$/, ''), timeoutMs: durationMs(spec.timeout!) })
  }

  // Identities → the identity-based methods (bearer, apiKey, mtls).
  const tokens = new CredentialTable()
  const apiKeys = new Map<string, CredentialTable>()
  const names = new Set<string>()
  ;(raw.identities ?? []).forEach((id, i) => {
    const at: ConfigPath = ['identities', i]
    if (names.has(id.name)) ctx.error([...at, 'name'], `duplicate identity name "${id.name}"`)
    names.add(id.name)
    if (!id.bearer && !id.apiKey && !id.mtls) ctx.error(at, 'an identity needs bearer, apiKey or mtls')
    const owner = { name: id.name, roles: id.roles ?? [] }
    const each = (value: string | string[] | undefined, key: 'bearer' | 'apiKey', add: (secret: string, path: ConfigPath) => void) => {
      if (value === undefined) return
      const list = Array.isArray(value) ? value : [value]
      list.forEach((ref, j) => {
        const path = Array.isArray(value) ? [...at, key, j] : [...at, key]
        const secret = isStoredDigest(ref) ? ref : ctx.secret(path, ref)
        if (secret !== undefined) add(secret, path)
      })
    }
    each(id.bearer, 'bearer', (s, path) => {
      if (!tokens.add(s, owner)) ctx.error(path, 'this token is already given to another identity')
    })
    const header = (id.apiKeyHeader ?? DEFAULT_API_KEY_HEADER).toLowerCase()
    each(id.apiKey, 'apiKey', (s, path) => {
      let table = apiKeys.get(header)
      if (!table) apiKeys.set(header, (table = new CredentialTable()))
      if (!table.add(s, owner)) ctx.error(path, 'this API key is already given to another identity')
    })
  })

  const authenticators = new Map<string, Authenticator>()
  if (tokens.size) authenticators.set('bearer', createBearerAuthenticator(tokens))
  if (apiKeys.size) authenticators.set('apiKey', createApiKeyAuthenticator(apiKeys))
  for (const [method, factory] of Object.entries(IDENTITY_METHOD_FACTORIES)) {
    const a = factory(raw, ctx)
    if (a) authenticators.set(method, a)
  }
  for (const [name, spec] of Object.entries(raw.schemes ?? {})) {
    if (authenticators.has(name) || name === 'mtls') {
      ctx.error(['schemes', name], `scheme name "${name}" is reserved for a built-in method`)
      continue
    }
    const factory = SCHEME_FACTORIES[spec.type]
    if (!factory) {
      ctx.error(['schemes', name, 'type'], `scheme type "${spec.type}" is not available in this build`)
      continue
    }
    const a = factory(name, spec, ctx, ['schemes', name])
    if (a) authenticators.set(name, a)
  }

  const forwardSpec = raw.forward ?? {}
  const identityHeaders = forwardSpec.identityHeaders ?? true
  const credentials = forwardSpec.credentials ?? 'strip'
  let assertion: Gateway['forward']['assertion']
  if (forwardSpec.assertion) {
    const keyPem = ctx.secret(['forward', 'assertion', 'key'], forwardSpec.assertion.key)
    const problem = keyPem === undefined ? undefined : assertionKeyProblem(keyPem)
    if (problem) ctx.error(['forward', 'assertion', 'key'], problem)
    else if (keyPem) assertion = { keyPem, ttlMs: durationMs(forwardSpec.assertion.ttl ?? '60s') }
  }
  const join = compileJoin(raw, ctx, authenticators)

  const defaultRateLimit = rateLimitPolicy(raw.defaults?.rateLimit) ?? null
  const af = raw.defaults?.authFailures
  const authFailures = af ? { max: af.max, windowMs: durationMs(af.window) } : null

  const known = [...authenticators.keys()]
  const routes: CompiledRoute[] = []
  raw.routes.forEach((spec, i) => {
    const at: ConfigPath = ['routes', i]
    if ((spec.path === undefined) === (spec.prefix === undefined)) {
      ctx.error(at, 'a route needs exactly one of path or prefix')
      return
    }
    const pattern = (spec.path ?? spec.prefix)!
    if (!pattern.startsWith('/')) ctx.error([...at, spec.path ? 'path' : 'prefix'], 'must start with /')
    if (spec.path && /\*./.test(spec.path)) ctx.error([...at, 'path'], '* may only stand at the end of a path')
    const upstream = upstreams.get(spec.upstream)
    if (!upstream && !raw.upstreams[spec.upstream]) ctx.error([...at, 'upstream'], `unknown upstream "${spec.upstream}"`)
    if (spec.public && spec.auth) ctx.error([...at, 'public'], 'a route is either public: true or has auth: [...], not both')
    if (!spec.public && !spec.auth) ctx.error(at, 'every route needs public: true or auth: [...]')
    if (spec.public === false && !spec.auth) return
    const auth: Authenticator[] = []
    ;(spec.auth ?? []).forEach((name, j) => {
      const a = authenticators.get(name)
      if (!a) {
        const hint = name === 'bearer' || name === 'apiKey' || name === 'mtls' ? ` (no identity has ${name === 'mtls' ? 'an mtls subject/san' : `a ${name}`})` : ''
        ctx.error([...at, 'auth', j], `unknown auth method "${name}"${hint}; known: ${known.join(', ') || 'none'}`)
      } else auth.push(a)
    })
    if (!upstream) return
    const challenge = [...new Set(auth.map((a) => a.challenge))].join(', ')
    const onlyOne = auth.length === 1 ? auth[0]!.missingMessage : undefined
    routes.push({
      index: i,
      id: pattern,
      matcher: compilePathMatcher(spec),
      methods: spec.methods ? new Set(spec.methods.map((m) => m.toUpperCase())) : null,
      upstream,
      public: spec.public === true,
      auth,
      challenge,
      missingMessage: onlyOne ?? 'Missing credentials',
      roles: spec.roles && spec.roles.length ? new Set(spec.roles) : null,
      // `rateLimit: false` (null) turns the limit off for this route; only an absent key takes the default.
      rateLimit: spec.rateLimit === undefined ? defaultRateLimit : rateLimitPolicy(spec.rateLimit)!,
      websocket: spec.websocket === true,
      loopbackAllow: spec.loopback === 'allow',
      credentials: spec.forward?.credentials ?? credentials,
      identityHeaders: spec.forward?.identityHeaders ?? identityHeaders,
      position: positionOf(at),
      spec,
    })
  })

  const apiKeyHeaders = [...new Set([DEFAULT_API_KEY_HEADER, ...apiKeys.keys()])]
  const credentialHeaders = [
    ...new Set(['authorization', ...apiKeyHeaders, ...WORKER_V1_HEADERS, ...SIGNATURE_HEADERS, ...[...authenticators.values()].flatMap((a) => a.credentialHeaders)]),
  ]

  return {
    file: ctx.file,
    raw,
    server: {
      listen: listen ?? { host: '127.0.0.1', port: 8080 },
      bodyLimit: sizeBytes(server.bodyLimit!),
      shutdownGraceMs: durationMs(server.shutdownGrace!),
      trustProxy: server.trustProxy ?? false,
      ...(tls ? { tls } : {}),
    },
    ...(admin ? { admin } : {}),
    state,
    upstreams,
    routes,
    authenticators,
    credentialHeaders,
    apiKeyHeaders,
    defaults: { rateLimit: defaultRateLimit, authFailures },
    forward: { identityHeaders, credentials, ...(assertion ? { assertion } : {}) },
    ...(join ? { join } : {}),
  }
}
