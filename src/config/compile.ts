// Turns a validated gateway.yaml into what the request path uses: digests of secrets, route matchers,
// per-route authenticators and limits. Runs once per load; nothing on the request path re-reads config.
import { isIP } from 'node:net'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { GatewayConfigFile, RouteFile } from './schema.js'
import { durationMs, sizeBytes, type CompileContext, type ConfigPath } from './types.js'
import { isReference, isStoredDigest, resolveReference } from './secrets.js'
import { compilePathMatcher, type Routable } from '../policy/routes.js'
import type { Authenticator } from '../auth/types.js'
import { CredentialTable } from '../auth/static-credentials.js'
import { createBearerAuthenticator, isB64Token } from '../auth/bearer.js'
import { createApiKeyAuthenticator, DEFAULT_API_KEY_HEADER } from '../auth/api-key.js'
import { SCHEME_FACTORIES } from '../auth/registry.js'
import { IDENTITY_METHOD_FACTORIES } from '../auth/identity-methods.js'
import { createGroupAuthenticator } from '../auth/groups.js'
import { compileRoles, type RoleRule } from '../auth/claims.js'
import { compileJoin, type JoinEndpoint } from '../auth/join.js'
import { assertionKeyProblem, compileAssertionSigner, type AssertionSigner } from '../proxy/assertion-signer.js'
import { compileTrust, parseTrustEntry, type TrustedProxies } from '../state/client-ip.js'
import { isCommand } from '../ucan/command.js'
import { identityNameProblem, schemeNameProblem } from '../auth/identity-names.js'
import { compileAuthorities, type Authorities } from '../auth/authorities.js'
import { compileState, type CompiledState } from './state.js'

export interface Listen {
  host: string
  port: number
}

export interface Upstream {
  name: string
  /** scheme://host:port — one keep-alive pool per origin. */
  origin: string
  /** host[:port] of the origin: the Host header sent upstream. */
  host: string
  /** A path prefix from the upstream URL ('' for none) put in front of the forwarded path. */
  basePath: string
  timeoutMs: number
  /** Most connections open to this upstream at once (pooled requests and upgrade tunnels together). */
  connections: number
}

/** A route's `concurrency`: requests of one identity or ip in flight on the route at once, per process. */
export interface ConcurrencyPolicy {
  max: number
  by: 'identity' | 'ip'
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
  /** DESIGN §4.9: plain roles and `{role, claims}` entries; null = any identity. */
  roles: RoleRule | null
  /** DESIGN §4.8: what a UCAN invocation must invoke here; set exactly when the route accepts a ucan scheme. */
  command: string | null
  rateLimit: RateLimitPolicy | null
  concurrency: ConcurrencyPolicy | null
  websocket: boolean
  loopbackAllow: boolean
  credentials: 'strip' | 'keep'
  identityHeaders: boolean
  /** DESIGN §3.2: `report` logs what steps 3–5 decide and forwards anyway. */
  enforce: 'on' | 'report'
  position: { line: number; col: number }
  spec: RouteFile
}

export interface Gateway {
  file: string
  raw: GatewayConfigFile
  server: {
    listen: Listen
    bodyLimit: number
    requestTimeoutMs: number
    /** All request bodies held in memory at once, across requests (503 OVERLOADED beyond). */
    bufferLimit: number
    shutdownGraceMs: number
    /** As written (for lints); the request path uses `trusted`. */
    trustProxy: boolean | string[]
    /** server.trustProxy compiled: is this peer address a trusted proxy? */
    trusted: TrustedProxies
    /**
     * The files' contents as read by THIS load (every load and reload reads them afresh). `secureContext` is
     * what a running HTTPS server passes to `server.setSecureContext()` on reload: new connections then use
     * the new certificate, key and client CA.
     */
    tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer; secureContext: SecureContextOptions }
    /** server.authorities, compiled; absent = not checked. */
    authorities?: Authorities
  }
  admin?: { listen: Listen }
  /** DESIGN §2 `tracing`: spans go to `endpoint` (the OTLP/HTTP traces URL); absent = tracing off. */
  tracing?: { endpoint: string; serviceName: string }
  state: CompiledState
  upstreams: ReadonlyMap<string, Upstream>
  routes: readonly CompiledRoute[]
  /** Every authenticator by the name routes use (bearer, apiKey, mtls, scheme names). */
  authenticators: ReadonlyMap<string, Authenticator>
  /** Header names of every credential portcullis recognizes, dropped before forwarding unless kept. */
  credentialHeaders: ReadonlySet<string>
  /** API-key header names (for ambiguity: two of them present). */
  apiKeyHeaders: readonly string[]
  defaults: { rateLimit: RateLimitPolicy | null; authFailures: { max: number; windowMs: number } | null }
  forward: { identityHeaders: boolean; credentials: 'strip' | 'keep'; assertion?: { signer: AssertionSigner } }
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

/** DESIGN §3.1: a certificate, key or CA that does not load is a config error now, not a failed handshake later. */
function compileTls(ctx: CompileContext, cert: Buffer, key: Buffer, clientCa: Buffer | undefined): Gateway['server']['tls'] {
  const loads = (options: SecureContextOptions): string | undefined => {
    try {
      createSecureContext(options)
      return undefined
    } catch (err) {
      // OpenSSL's reason (e.g. "PEM routines::no start line"); never the file's contents.
      return (err as Error).message
    }
  }
  let ok = true
  const check = (field: string, options: SecureContextOptions, what: string) => {
    const problem = loads(options)
    if (problem) {
      ctx.error(['server', 'tls', field], `${what} does not load: ${problem}`)
      ok = false
    }
  }
  check('cert', { cert }, 'the certificate')
  check('key', { key }, 'the private key')
  if (clientCa) check('clientCa', { ca: clientCa }, 'the CA certificate')
  const secureContext: SecureContextOptions = { cert, key, ...(clientCa ? { ca: clientCa } : {}) }
  if (ok) check('key', secureContext, 'the private key with this certificate')
  if (!ok) return undefined
  return { cert, key, ...(clientCa ? { clientCa } : {}), secureContext }
}

/** Each trustProxy entry checked here (at its own position), so compileTrust never sees a bad one. */
function compileTrustProxy(ctx: CompileContext, trust: boolean | string[]): TrustedProxies {
  if (typeof trust === 'boolean') return compileTrust(trust)
  const good: string[] = []
  trust.forEach((entry, i) => {
    const parsed = parseTrustEntry(entry)
    if (parsed.ok) good.push(entry)
    else ctx.error(['server', 'trustProxy', i], parsed.message)
  })
  return compileTrust(good)
}

/** The same context, counting the errors it records: a part that recorded one is broken (see `broken` below). */
function countingContext(ctx: CompileContext): CompileContext & { errors(): number } {
  let n = 0
  return {
    file: ctx.file,
    error: (path, message) => {
      n++
      ctx.error(path, message)
    },
    warn: (path, message) => ctx.warn(path, message),
    secret: (path, ref) => {
      const value = ctx.secret(path, ref)
      if (value === undefined) n++
      return value
    },
    readFile: (path, filePath) => {
      const data = ctx.readFile(path, filePath)
      if (data === undefined) n++
      return data
    },
    errors: () => n,
  }
}

/**
 * Compiles each entry of a list on its own: one that throws (a shape the schema already refused, since
 * compile also runs on a file with schema errors so every problem shows in one run) is an error at that
 * entry, and the others still compile.
 */
function eachEntry<T>(ctx: CompileContext, list: readonly T[], at: (i: number) => ConfigPath, compile: (item: T, i: number) => void): void {
  list.forEach((item, i) => {
    try {
      compile(item, i)
    } catch (err) {
      ctx.error(at(i), `could not be compiled: ${(err as Error).message}`)
    }
  })
}

export function compileGateway(
  raw: GatewayConfigFile,
  outer: CompileContext,
  env: NodeJS.ProcessEnv,
  positionOf: (path: ConfigPath) => { line: number; col: number },
): Gateway {
  const ctx = countingContext(outer)
  // Methods whose own config already gave an error: a route naming one is not another error (one root
  // cause, one error — DESIGN §1), it just does not compile.
  const broken = new Set<string>()
  const server = raw.server!
  const listen = parseListen(server.listen!)
  if (!listen) ctx.error(['server', 'listen'], 'must be host:port, e.g. 127.0.0.1:8080 or "[::1]:8080"')
  let tls: Gateway['server']['tls']
  if (server.tls) {
    const cert = ctx.readFile(['server', 'tls', 'cert'], server.tls.cert)
    const key = ctx.readFile(['server', 'tls', 'key'], server.tls.key)
    const clientCa = server.tls.clientCa ? ctx.readFile(['server', 'tls', 'clientCa'], server.tls.clientCa) : undefined
    if (cert && key && (clientCa || !server.tls.clientCa)) tls = compileTls(ctx, cert, key, clientCa)
  }
  // One body of bodyLimit must fit in the buffer budget, or every signed request would be refused.
  if (server.bufferLimit !== undefined && server.bodyLimit !== undefined && sizeBytes(server.bufferLimit) < sizeBytes(server.bodyLimit)) {
    ctx.error(['server', 'bufferLimit'], 'must be at least server.bodyLimit')
  }
  const trusted = compileTrustProxy(ctx, server.trustProxy ?? false)
  let authorities: Authorities | undefined
  if (server.authorities) {
    const a = compileAuthorities(server.authorities)
    if (a.ok) authorities = a.authorities
    else ctx.error(['server', 'authorities', a.index], 'must be a host name or address, optionally with :port (e.g. gw.internal or gw.internal:8443)')
  }
  let admin: Gateway['admin']
  if (raw.admin) {
    const a = parseListen(raw.admin.listen ?? '127.0.0.1:9901')
    if (!a) ctx.error(['admin', 'listen'], 'must be host:port, e.g. 127.0.0.1:9901')
    else if (listen && a.port !== 0 && a.port === listen.port) ctx.error(['admin', 'listen'], 'must not be the proxy port (server.listen): the admin endpoints never share it')
    else admin = { listen: a }
  }

  let tracing: Gateway['tracing']
  if (raw.tracing) {
    const endpoint = otlpTracesUrl(raw.tracing.otlp)
    if (!endpoint) ctx.error(['tracing', 'otlp'], 'must be an http:// or https:// URL, e.g. http://127.0.0.1:4318')
    else tracing = { endpoint, serviceName: raw.tracing.serviceName ?? 'portcullis' }
  }

  const state = compileState(raw.state!, ctx, env)

  const upstreams = new Map<string, Upstream>()
  const upstreamEntries = Object.entries(raw.upstreams)
  eachEntry(ctx, upstreamEntries, (i) => ['upstreams', upstreamEntries[i]![0]], ([name, spec]) => {
    let url: URL | undefined
    try {
      url = new URL(spec.url)
    } catch {
      url = undefined
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username) {
      ctx.error(['upstreams', name, 'url'], 'must be an http:// or https:// URL without query, fragment or credentials')
      return
    }
    upstreams.set(name, { name, origin: url.origin, host: url.host, basePath: url.pathname.replace(/\/$/, ''), timeoutMs: durationMs(spec.timeout!), connections: spec.connections ?? 128 })
  })

  // Identities → the identity-based methods (bearer, apiKey, mtls).
  const tokens = new CredentialTable()
  const apiKeys = new Map<string, CredentialTable>()
  const names = new Set<string>()
  eachEntry(ctx, raw.identities ?? [], (i) => ['identities', i], (id, i) => {
    const at: ConfigPath = ['identities', i]
    const nameProblem = identityNameProblem(id.name)
    if (nameProblem) ctx.error([...at, 'name'], nameProblem)
    if (names.has(id.name)) ctx.error([...at, 'name'], `duplicate identity name "${id.name}"`)
    names.add(id.name)
    if (!id.bearer && !id.apiKey && !id.mtls) ctx.error(at, 'an identity needs bearer, apiKey or mtls')
    const owner = { name: id.name, roles: id.roles ?? [], ...(id.claims ? { claims: id.claims } : {}) }
    const each = (value: string | string[] | undefined, key: 'bearer' | 'apiKey', add: (secret: string, path: ConfigPath) => void) => {
      if (value === undefined) return
      const list = Array.isArray(value) ? value : [value]
      list.forEach((ref, j) => {
        const path = Array.isArray(value) ? [...at, key, j] : [...at, key]
        const secret = isStoredDigest(ref) ? ref : ctx.secret(path, ref)
        if (secret !== undefined) add(secret, path)
        else broken.add(key)
      })
    }
    each(id.bearer, 'bearer', (s, path) => {
      // A token no client could send in `Authorization: Bearer` (RFC 6750 b64token) is a mistake; never echoed.
      if (!isStoredDigest(s) && !isB64Token(s)) ctx.error(path, 'a bearer token must be RFC 6750 b64token text (letters, digits, -._~+/ then optional =)')
      else if (!tokens.add(s, owner)) ctx.error(path, 'this token is already given to another identity')
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
    const before = ctx.errors()
    const a = factory(raw, ctx)
    if (a) authenticators.set(method, a)
    if (ctx.errors() > before) broken.add(method)
  }
  for (const [name, spec] of Object.entries(raw.schemes ?? {})) {
    if (authenticators.has(name) || name === 'mtls') {
      ctx.error(['schemes', name], `scheme name "${name}" is reserved for a built-in method`)
      continue
    }
    // DESIGN §3.3: identities are `<scheme>:<subject>`, and `join:<keyid>` is the join endpoint's.
    const schemeProblem = schemeNameProblem(name)
    if (schemeProblem) {
      ctx.error(['schemes', name], schemeProblem)
      continue
    }
    const factory = SCHEME_FACTORIES[spec.type]
    if (!factory) {
      ctx.error(['schemes', name, 'type'], `scheme type "${spec.type}" is not available in this build`)
      broken.add(name)
      continue
    }
    const before = ctx.errors()
    // DESIGN §4.9: a bound token needs a verified client certificate, which needs a client CA.
    if ((spec as { bindCertificate?: boolean }).bindCertificate === true && !raw.server?.tls?.clientCa) {
      ctx.error(['schemes', name, 'bindCertificate'], 'bindCertificate needs server.tls.clientCa (tokens are bound to verified client certificates)')
    }
    let a: Authenticator | undefined
    try {
      a = factory(name, spec, ctx, ['schemes', name])
    } catch (err) {
      ctx.error(['schemes', name], `could not be compiled: ${(err as Error).message}`)
    }
    if (a && ctx.errors() === before) authenticators.set(name, a)
    else broken.add(name)
  }

  const forwardSpec = raw.forward ?? {}
  const identityHeaders = forwardSpec.identityHeaders ?? true
  const credentials = forwardSpec.credentials ?? 'strip'
  let assertion: Gateway['forward']['assertion']
  if (forwardSpec.assertion) {
    const keyPem = ctx.secret(['forward', 'assertion', 'key'], forwardSpec.assertion.key)
    const problem = keyPem === undefined ? undefined : assertionKeyProblem(keyPem)
    if (problem) ctx.error(['forward', 'assertion', 'key'], problem)
    else if (keyPem) assertion = { signer: compileAssertionSigner(keyPem, durationMs(forwardSpec.assertion.ttl!)) }
  }
  const join = compileJoin(raw, ctx, authenticators)

  const defaultRateLimit = rateLimitPolicy(raw.defaults?.rateLimit) ?? null
  const af = raw.defaults?.authFailures
  const authFailures = af ? { max: af.max, windowMs: durationMs(af.window) } : null

  const known = [...authenticators.keys(), ...broken]
  const routes: CompiledRoute[] = []
  eachEntry(ctx, raw.routes, (i) => ['routes', i], (spec, i) => {
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
    const lookup = (name: string, path: ConfigPath): Authenticator | undefined => {
      const a = authenticators.get(name)
      if (!a && !broken.has(name)) {
        const hint = name === 'bearer' || name === 'apiKey' || name === 'mtls' ? ` (no identity has ${name === 'mtls' ? 'an mtls subject/san' : `a ${name}`})` : ''
        ctx.error(path, `unknown auth method "${name}"${hint}; known: ${known.join(', ') || 'none'}`)
      }
      return a
    }
    ;(spec.auth ?? []).forEach((entry, j) => {
      if (typeof entry === 'string') {
        const a = lookup(entry, [...at, 'auth', j])
        if (a) auth.push(a)
        return
      }
      // DESIGN §4.9: an all-of group; each member once.
      const members = entry.map((name, k) => lookup(name, [...at, 'auth', j, k]))
      const dup = entry.findIndex((name, k) => entry.indexOf(name) !== k)
      if (dup !== -1) ctx.error([...at, 'auth', j, dup], `"${entry[dup]}" appears twice in this group`)
      else if (members.every((a) => a !== undefined)) {
        // One request carries one credential of each kind (one Authorization header): two members of one
        // kind could never both be satisfied.
        const kinds = (members as Authenticator[]).map((a) => a.kind)
        const clash = kinds.findIndex((k, x) => kinds.indexOf(k) !== x)
        if (clash !== -1) ctx.error([...at, 'auth', j, clash], `"${entry[clash]}" reads the same credential as "${entry[kinds.indexOf(kinds[clash]!)]}": a group needs members of different kinds`)
        else auth.push(createGroupAuthenticator(members as Authenticator[]))
      }
    })
    const ucan = (spec.auth ?? []).flat().some((name) => raw.schemes?.[name]?.type === 'ucan')
    if (ucan && spec.command === undefined) ctx.error(at, 'a route that accepts a ucan scheme needs `command` (the UCAN command invoked here)')
    if (!ucan && spec.command !== undefined) ctx.error([...at, 'command'], '`command` applies only to a route that accepts a ucan scheme')
    if (spec.command !== undefined && !isCommand(spec.command)) ctx.error([...at, 'command'], 'must be a UCAN command: lowercase, starting with /, no trailing or double /')
    if (!upstream) return
    const challenge = [...new Set(auth.flatMap((a) => a.members ?? [a]).map((a) => a.challenge))].join(', ')
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
      roles: compileRoles(spec.roles),
      command: ucan ? (spec.command ?? null) : null,
      // `rateLimit: false` (null) turns the limit off for this route; only an absent key takes the default.
      rateLimit: spec.rateLimit === undefined ? defaultRateLimit : rateLimitPolicy(spec.rateLimit)!,
      concurrency: spec.concurrency ? { max: spec.concurrency.max, by: spec.concurrency.by ?? 'identity' } : null,
      websocket: spec.websocket === true,
      loopbackAllow: spec.loopback === 'allow',
      credentials: spec.forward?.credentials ?? credentials,
      identityHeaders: spec.forward?.identityHeaders ?? identityHeaders,
      enforce: spec.enforce ?? raw.defaults?.enforce ?? 'on',
      position: positionOf(at),
      spec,
    })
  })

  const apiKeyHeaders = [...new Set([DEFAULT_API_KEY_HEADER, ...apiKeys.keys()])]
  const credentialHeaders = new Set(['authorization', ...apiKeyHeaders, ...WORKER_V1_HEADERS, ...SIGNATURE_HEADERS, ...[...authenticators.values()].flatMap((a) => a.credentialHeaders)])

  return {
    file: ctx.file,
    raw,
    server: {
      listen: listen ?? { host: '127.0.0.1', port: 8080 },
      bodyLimit: sizeBytes(server.bodyLimit!),
      requestTimeoutMs: durationMs(server.requestTimeout!),
      bufferLimit: sizeBytes(server.bufferLimit ?? '256mb'),
      shutdownGraceMs: durationMs(server.shutdownGrace!),
      trustProxy: server.trustProxy ?? false,
      trusted,
      ...(authorities ? { authorities } : {}),
      ...(tls ? { tls } : {}),
    },
    ...(admin ? { admin } : {}),
    ...(tracing ? { tracing } : {}),
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

/**
 * `tracing.otlp` is the collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: spans go to its
 * /v1/traces (a URL that already ends in /v1/traces is taken as is). A user:password in it is refused:
 * a URL is the kind of value that ends up in a log line, and a secret must not.
 */
function otlpTracesUrl(s: string): string | undefined {
  let u: URL
  try {
    u = new URL(s)
  } catch {
    return undefined
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash) return undefined
  if (!u.pathname.endsWith('/v1/traces')) u.pathname = u.pathname.replace(/\/*$/, '') + '/v1/traces'
  return u.toString()
}
