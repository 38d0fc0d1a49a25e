// The one declaration of gateway.yaml: types, defaults and validation all come from here.
// Scheme bodies are validated per `type` (see SCHEME_SCHEMAS) so errors name the right field.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { StateSchema } from './state.js'

const Strict = { additionalProperties: false } as const

/** "500ms", "10s", "5m", "1h", "1d", or a whole number of seconds. */
export const Duration = (def?: string) =>
  Type.Union([Type.String({ pattern: '^[0-9]+(ms|s|m|h|d)$' }), Type.Integer({ minimum: 0 })], {
    description: 'duration such as 500ms, 10s, 5m, 1h',
    ...(def === undefined ? {} : { default: def }),
  })
/** "512b", "64kb", "1mb", "1gb", or a whole number of bytes. */
export const Size = (def?: string) =>
  Type.Union([Type.String({ pattern: '^[0-9]+(b|kb|mb|gb)$' }), Type.Integer({ minimum: 0 })], {
    description: 'size such as 64kb, 1mb',
    ...(def === undefined ? {} : { default: def }),
  })
/** A secret reference `${env:NAME}` / `${file:/path}`; checked (never printed) by secrets.ts. */
const Secret = Type.String({ description: 'secret reference ${env:NAME} or ${file:/path}' })
const Roles = Type.Array(Type.String({ minLength: 1 }))
/** DESIGN §4.9: attributes of an identity or of every signer of a scheme; a route's `{role, claims}` may require them. */
const ClaimScalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()])
const Claims = Type.Record(Type.String({ minLength: 1 }), Type.Union([ClaimScalar, Type.Array(ClaimScalar)]), { description: 'claim name -> value' })
/** A route's `roles`: a role, or a role with required claims (a list of values = any of them). */
const RouteRoles = Type.Array(
  Type.Union([
    Type.String({ minLength: 1 }),
    Type.Object({ role: Type.String({ minLength: 1 }), claims: Type.Record(Type.String({ minLength: 1 }), Type.Union([ClaimScalar, Type.Array(ClaimScalar, { minItems: 1 })])) }, Strict),
  ]),
)
const HostPort = (def?: string) => Type.String({ minLength: 3, description: 'host:port', ...(def === undefined ? {} : { default: def }) })

const RateLimit = Type.Object(
  {
    max: Type.Integer({ minimum: 1 }),
    window: Duration(),
    by: Type.Optional(Type.Union([Type.Literal('identity'), Type.Literal('ip')], { default: 'identity' })),
  },
  Strict,
)

const Server = Type.Object(
  {
    listen: Type.Optional(HostPort('127.0.0.1:8080')),
    bodyLimit: Type.Optional(Size('1mb')),
    requestTimeout: Type.Optional(Duration('30s')),
    bufferLimit: Type.Optional(Size('256mb')),
    shutdownGrace: Type.Optional(Duration('10s')),
    trustProxy: Type.Optional(Type.Union([Type.Boolean(), Type.Array(Type.String({ minLength: 1 }))], { default: false })),
    // DESIGN §4.4: the names clients address this gateway by; absent = rfc9421 @authority not checked.
    authorities: Type.Optional(Type.Array(Type.String({ minLength: 1, description: 'host or host:port' }), { minItems: 1 })),
    tls: Type.Optional(
      Type.Object({ cert: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }), clientCa: Type.Optional(Type.String({ minLength: 1 })) }, Strict),
    ),
  },
  Strict,
)

// `state:` is declared beside its compilation, in state.ts.
const State = StateSchema

const Upstream = Type.Object(
  { url: Type.String({ minLength: 1 }), timeout: Type.Optional(Duration('30s')), connections: Type.Optional(Type.Integer({ minimum: 1, default: 128 })) },
  Strict,
)

const Concurrency = Type.Object(
  { max: Type.Integer({ minimum: 1 }), by: Type.Optional(Type.Union([Type.Literal('identity'), Type.Literal('ip')], { default: 'identity' })) },
  Strict,
)

const Identity = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    roles: Type.Optional(Roles),
    claims: Type.Optional(Claims),
    bearer: Type.Optional(Type.Union([Secret, Type.Array(Secret, { minItems: 1 })])),
    apiKey: Type.Optional(Type.Union([Secret, Type.Array(Secret, { minItems: 1 })])),
    apiKeyHeader: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' })),
    mtls: Type.Optional(
      Type.Object({ subject: Type.Optional(Type.String({ minLength: 1 })), san: Type.Optional(Type.String({ minLength: 1 })) }, Strict),
    ),
  },
  Strict,
)

export const WorkerV1Scheme = Type.Object(
  { type: Type.Literal('worker-v1'), secret: Secret, window: Type.Optional(Duration('5m')), roles: Type.Optional(Roles), claims: Type.Optional(Claims) },
  Strict,
)
export const Rfc9421Scheme = Type.Object(
  {
    type: Type.Literal('rfc9421'),
    window: Type.Optional(Duration('60s')),
    keys: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Secret)),
    derive: Type.Optional(Secret),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    roles: Type.Optional(Roles),
    claims: Type.Optional(Claims),
  },
  Strict,
)
export const JwtScheme = Type.Object(
  {
    type: Type.Literal('jwt'),
    issuer: Type.Optional(Type.String({ minLength: 1 })),
    audience: Type.Optional(Type.String({ minLength: 1 })),
    secret: Type.Optional(Secret),
    jwks: Type.Optional(Type.String({ minLength: 1, description: 'a JWKS file, or an https:// URL (http:// only to a loopback address)' })),
    jwksCa: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA that verifies an https:// jwks URL (a private CA)' })),
    jwksCacheTtl: Type.Optional(Duration('10m')),
    maxTtl: Type.Optional(Duration('15m')),
    rolesClaim: Type.Optional(Type.String({ minLength: 1, default: 'roles' })),
    roles: Type.Optional(Roles),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'jti or sub values refused with KEY_REVOKED' })),
    bindCertificate: Type.Optional(Type.Boolean({ default: false, description: 'accept only tokens whose cnf.x5t#S256 is the client certificate (RFC 8705)' })),
  },
  Strict,
)
export const UcanScheme = Type.Object(
  {
    type: Type.Literal('ucan'),
    subjects: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    audience: Type.Optional(Type.String({ minLength: 1 })),
    window: Type.Optional(Duration('5m')),
    roles: Type.Optional(Roles),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    bindCertificate: Type.Optional(Type.Boolean({ default: false })),
  },
  Strict,
)
export const SCHEME_SCHEMAS: Record<string, TSchema> = {
  'worker-v1': WorkerV1Scheme,
  rfc9421: Rfc9421Scheme,
  jwt: JwtScheme,
  ucan: UcanScheme,
}
/** Checked first; the body is then checked against SCHEME_SCHEMAS[type]. */
const SchemeHead = Type.Object({ type: Type.Union(Object.keys(SCHEME_SCHEMAS).map((k) => Type.Literal(k))) })

const RouteForward = Type.Object(
  {
    credentials: Type.Optional(Type.Union([Type.Literal('strip'), Type.Literal('keep')])),
    identityHeaders: Type.Optional(Type.Boolean()),
  },
  Strict,
)

/** DESIGN §3.2: `report` decides and logs as usual but forwards anyway. */
const Enforce = (def?: string) =>
  Type.Union([Type.Literal('on'), Type.Literal('report')], { description: 'on | report', ...(def === undefined ? {} : { default: def }) })

const Method = Type.String({ pattern: '^[A-Za-z]+$' })

const Route = Type.Object(
  {
    path: Type.Optional(Type.String({ minLength: 1 })),
    prefix: Type.Optional(Type.String({ minLength: 1 })),
    methods: Type.Optional(Type.Array(Method, { minItems: 1 })),
    upstream: Type.String({ minLength: 1 }),
    public: Type.Optional(Type.Boolean()),
    // A list inside the list is an all-of group (DESIGN §4.9): `[bearer, [mtls, jobs]]`.
    auth: Type.Optional(
      Type.Array(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 2, description: 'all of these methods' })]), { minItems: 1 }),
    ),
    roles: Type.Optional(RouteRoles),
    command: Type.Optional(Type.String({ minLength: 1, description: 'the UCAN command an invocation must invoke on this route (section 4.8)' })),
    rateLimit: Type.Optional(Type.Union([RateLimit, Type.Literal(false)])),
    concurrency: Type.Optional(Concurrency),
    websocket: Type.Optional(Type.Boolean()),
    loopback: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])),
    forward: Type.Optional(RouteForward),
    enforce: Type.Optional(Enforce()),
  },
  Strict,
)

export const GatewayConfigSchema = Type.Object(
  {
    version: Type.Literal(1),
    server: Type.Optional(Type.Object(Server.properties, { ...Strict, default: {} })),
    admin: Type.Optional(Type.Object({ listen: Type.Optional(HostPort()) }, Strict)),
    // DESIGN §2: OpenTelemetry, off when absent. The URL is checked in compile.ts (FILE:LINE:COL).
    tracing: Type.Optional(
      Type.Object({ otlp: Type.String({ minLength: 1 }), serviceName: Type.Optional(Type.String({ minLength: 1, default: 'portcullis' })) }, Strict),
    ),
    state: Type.Optional(Type.Object(State.properties, { ...Strict, default: {} })),
    upstreams: Type.Record(Type.String({ minLength: 1 }), Upstream),
    identities: Type.Optional(Type.Array(Identity)),
    schemes: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), SchemeHead)),
    join: Type.Optional(
      Type.Object({ path: Type.Optional(Type.String({ pattern: '^/', default: '/_portcullis/join' })), psk: Secret, scheme: Type.String({ minLength: 1 }) }, Strict),
    ),
    routes: Type.Array(Route),
    defaults: Type.Optional(
      Type.Object(
        {
          rateLimit: Type.Optional(Type.Union([RateLimit, Type.Literal(false)])),
          authFailures: Type.Optional(
            Type.Union([Type.Object({ max: Type.Integer({ minimum: 1 }), window: Duration() }, Strict), Type.Literal(false)]),
          ),
          enforce: Type.Optional(Enforce('on')),
        },
        Strict,
      ),
    ),
    forward: Type.Optional(
      Type.Object(
        {
          identityHeaders: Type.Optional(Type.Boolean({ default: true })),
          credentials: Type.Optional(Type.Union([Type.Literal('strip'), Type.Literal('keep')], { default: 'strip' })),
          assertion: Type.Optional(Type.Object({ key: Secret, ttl: Type.Optional(Duration('60s')) }, Strict)),
        },
        Strict,
      ),
    ),
  },
  Strict,
)

export type GatewayConfigFile = Static<typeof GatewayConfigSchema>
export type RouteFile = Static<typeof Route>
export type IdentityFile = Static<typeof Identity>
export type RateLimitFile = Static<typeof RateLimit>
export type WorkerV1SchemeFile = Static<typeof WorkerV1Scheme>
export type Rfc9421SchemeFile = Static<typeof Rfc9421Scheme>
export type JwtSchemeFile = Static<typeof JwtScheme>
export type UcanSchemeFile = Static<typeof UcanScheme>
export type SchemeFile = WorkerV1SchemeFile | Rfc9421SchemeFile | JwtSchemeFile
