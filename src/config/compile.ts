// Turns a validated gateway.yaml into what the request path uses: digests of secrets, route matchers,
// per-route authenticators and limits. Runs once per load; nothing on the request path re-reads config.
import { isIP } from 'node:net'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { GatewayConfigFile, RouteFile } from './schema.js'
import { durationMs, eachEntry, sizeBytes, type CompileContext, type ConfigPath } from './types.js'
import { isReference, resolveReference } from './secrets.js'
import { ERRORS } from '../errors.js'
import { compilePathMatcher, type Routable } from '../policy/routes.js'
import type { Authenticator, CompileFacts } from '../auth/types.js'
import { BUILT_IN_METHOD_NAMES, IDENTITY_METHODS, JOIN, LOOPBACK, recognizedCredentials, SCHEME_TYPES, type RecognizedCredentials } from '../auth/methods.js'
import { createGroupAuthenticator } from '../auth/groups.js'
import { compileRoles, type RoleRule } from '../auth/claims.js'
import type { JoinEndpoint } from '../auth/join.js'
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
  /** Public, or every method `local` (auth/types.ts): steps 3–5 in one store call (steps/admit.ts). */
  admitsLocally: boolean
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
  /** Every credential portcullis recognizes (auth/methods.ts): ambiguity, and the headers dropped before forwarding unless kept. */
  credentials: RecognizedCredentials
  defaults: { rateLimit: RateLimitPolicy | null; authFailures: { max: number; windowMs: number } | null }
  forward: { identityHeaders: boolean; credentials: 'strip' | 'keep'; assertion?: { signer: AssertionSigner } }
  /** DESIGN §4.7: POST <join.path>, a route of its own matched before the routes. */
  join?: JoinRoute
}

/** DESIGN §4.7: the join endpoint as a route, compiled with the rest: it answers itself, never forwards. */
export interface JoinRoute {
  /** The join path: the audit line's `route`. */
  id: string
  upstream: null
  public: false
  auth: readonly Authenticator[]
  challenge: string
  missingMessage: string
  roles: null
  rateLimit: RateLimitPolicy | null
  loopbackAllow: false
  websocket: false
  endpoint: JoinEndpoint
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

function rateLimitPolicy(spec: { max: number; window: string | number; by: 'identity' | 'ip' } | false | undefined): RateLimitPolicy | null | undefined {
  if (spec === undefined) return undefined
  if (spec === false) return null
  return { max: spec.max, windowMs: durationMs(spec.window), by: spec.by }
}

/** "bearer, apiKey or mtls". */
function orList(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`
}

/** Where a listen that did not parse points: that is a config error, so this gateway is never served. */
const NOWHERE: Listen = { host: '', port: 0 }

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
  const server = raw.server
  const listen = parseListen(server.listen)
  if (!listen) ctx.error(['server', 'listen'], 'must be host:port, e.g. 127.0.0.1:8080 or "[::1]:8080"')
  let tls: Gateway['server']['tls']
  if (server.tls) {
    const cert = ctx.readFile(['server', 'tls', 'cert'], server.tls.cert)
    const key = ctx.readFile(['server', 'tls', 'key'], server.tls.key)
    const clientCa = server.tls.clientCa ? ctx.readFile(['server', 'tls', 'clientCa'], server.tls.clientCa) : undefined
    if (cert && key && (clientCa || !server.tls.clientCa)) tls = compileTls(ctx, cert, key, clientCa)
  }
  // One body of bodyLimit must fit in the buffer budget, or every signed request would be refused.
  if (sizeBytes(server.bufferLimit) < sizeBytes(server.bodyLimit)) {
    ctx.error(['server', 'bufferLimit'], 'must be at least server.bodyLimit')
  }
  const trusted = compileTrustProxy(ctx, server.trustProxy)
  let authorities: Authorities | undefined
  if (server.authorities) {
    const a = compileAuthorities(server.authorities)
    if (a.ok) authorities = a.authorities
    else ctx.error(['server', 'authorities', a.index], 'must be a host name or address, optionally with :port (e.g. gw.internal or gw.internal:8443)')
  }
  let admin: Gateway['admin']
  if (raw.admin) {
    const a = parseListen(raw.admin.listen)
    if (!a) ctx.error(['admin', 'listen'], 'must be host:port, e.g. 127.0.0.1:9901')
    else if (listen && a.port !== 0 && a.port === listen.port) ctx.error(['admin', 'listen'], 'must not be the proxy port (server.listen): the admin endpoints never share it')
    else admin = { listen: a }
  }

  let tracing: Gateway['tracing']
  if (raw.tracing) {
    const endpoint = otlpTracesUrl(raw.tracing.otlp)
    if (!endpoint) ctx.error(['tracing', 'otlp'], 'must be an http:// or https:// URL, e.g. http://127.0.0.1:4318')
    else tracing = { endpoint, serviceName: raw.tracing.serviceName }
  }

  const state = compileState(raw.state, ctx, env)

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
    upstreams.set(name, { name, origin: url.origin, host: url.host, basePath: url.pathname.replace(/\/$/, ''), timeoutMs: durationMs(spec.timeout), connections: spec.connections })
  })

  // Identities: their names here; each identity method (auth/methods.ts) compiles its own field of them.
  const identities = raw.identities ?? []
  const names = new Set<string>()
  eachEntry(ctx, identities, (i) => ['identities', i], (id, i) => {
    const at: ConfigPath = ['identities', i]
    const nameProblem = identityNameProblem(id.name)
    if (nameProblem) ctx.error([...at, 'name'], nameProblem)
    if (names.has(id.name)) ctx.error([...at, 'name'], `duplicate identity name "${id.name}"`)
    names.add(id.name)
    if (!IDENTITY_METHODS.some((m) => (id as Record<string, unknown>)[m.name] !== undefined)) ctx.error(at, `an identity needs ${orList(IDENTITY_METHODS.map((m) => m.name))}`)
  })
  const facts: CompileFacts = { clientCa: Boolean(server.tls?.clientCa) }
  const authenticators = new Map<string, Authenticator>()
  for (const method of IDENTITY_METHODS) {
    const before = ctx.errors()
    try {
      const a = method.compile(identities, ctx, facts)
      if (a) authenticators.set(method.name, a)
    } catch (err) {
      ctx.error(['identities'], `could not be compiled: ${(err as Error).message}`)
    }
    if (ctx.errors() > before) broken.add(method.name)
  }
  const reserved = new Set(BUILT_IN_METHOD_NAMES)
  for (const [name, spec] of Object.entries(raw.schemes ?? {})) {
    if (reserved.has(name)) {
      ctx.error(['schemes', name], `scheme name "${name}" is reserved for a built-in method`)
      continue
    }
    // DESIGN §3.3: identities are `<scheme>:<subject>`, and `join:<keyid>` is the join endpoint's.
    const schemeProblem = schemeNameProblem(name)
    if (schemeProblem) {
      ctx.error(['schemes', name], schemeProblem)
      continue
    }
    const type = SCHEME_TYPES.find((t) => t.type === spec.type)
    if (!type) {
      ctx.error(['schemes', name, 'type'], `scheme type "${spec.type}" is not available in this build`)
      broken.add(name)
      continue
    }
    const before = ctx.errors()
    let a: Authenticator | undefined
    try {
      // The entry passed its type's schema (load.ts): it is that type's Filled spec.
      a = type.compile(name, spec as never, ctx, ['schemes', name], facts)
    } catch (err) {
      ctx.error(['schemes', name], `could not be compiled: ${(err as Error).message}`)
    }
    if (a && ctx.errors() === before) authenticators.set(name, a)
    else broken.add(name)
  }

  const forwardSpec = raw.forward
  const identityHeaders = forwardSpec.identityHeaders
  const credentials = forwardSpec.credentials
  let assertion: Gateway['forward']['assertion']
  if (forwardSpec.assertion) {
    const keyPem = ctx.secret(['forward', 'assertion', 'key'], forwardSpec.assertion.key)
    const problem = keyPem === undefined ? undefined : assertionKeyProblem(keyPem)
    if (problem) ctx.error(['forward', 'assertion', 'key'], problem)
    else if (keyPem) assertion = { signer: compileAssertionSigner(keyPem, durationMs(forwardSpec.assertion.ttl)) }
  }

  const defaultRateLimit = rateLimitPolicy(raw.defaults.rateLimit) ?? null
  const af = raw.defaults.authFailures
  const authFailures = af ? { max: af.max, windowMs: durationMs(af.window) } : null

  // DESIGN §4.7: the join endpoint is a route of its own, matched before the others.
  let join: JoinRoute | undefined
  const joined = raw.join ? JOIN.compile(raw.join, raw.schemes ?? {}, ctx, authenticators) : undefined
  if (joined) {
    const { endpoint, authenticator } = joined
    join = {
      id: endpoint.path,
      upstream: null,
      public: false,
      auth: [authenticator],
      challenge: authenticator.challenge,
      missingMessage: ERRORS.MISSING_CREDENTIALS.message,
      roles: null,
      rateLimit: defaultRateLimit,
      loopbackAllow: false,
      websocket: false,
      endpoint,
    }
  }

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
        const method = IDENTITY_METHODS.find((m) => m.name === name)
        const hint = method ? ` (${method.unused})` : ''
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
    // DESIGN §4.8: a route accepting a ucan scheme serves one command.
    const ucan = (spec.auth ?? []).flat().some((name) => SCHEME_TYPES.find((t) => t.type === raw.schemes?.[name]?.type)?.routeCommand === true)
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
      concurrency: spec.concurrency ? { max: spec.concurrency.max, by: spec.concurrency.by } : null,
      websocket: spec.websocket === true,
      loopbackAllow: LOOPBACK.compile(spec),
      admitsLocally: spec.public === true || (auth.length > 0 && auth.every((a) => a.local === true)),
      credentials: spec.forward?.credentials ?? credentials,
      identityHeaders: spec.forward?.identityHeaders ?? identityHeaders,
      enforce: spec.enforce ?? raw.defaults.enforce,
      position: positionOf(at),
      spec,
    })
  })

  return {
    file: ctx.file,
    raw,
    server: {
      listen: listen ?? NOWHERE,
      bodyLimit: sizeBytes(server.bodyLimit),
      requestTimeoutMs: durationMs(server.requestTimeout),
      bufferLimit: sizeBytes(server.bufferLimit),
      shutdownGraceMs: durationMs(server.shutdownGrace),
      trustProxy: server.trustProxy,
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
    credentials: recognizedCredentials(authenticators.values()),
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
