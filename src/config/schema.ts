// The one declaration of gateway.yaml: types, defaults and validation all come from here. The auth
// methods declare their own parts (identity fields, scheme bodies, a route's `loopback`, `join:`) in
// their modules, listed in auth/methods.ts. Scheme bodies are validated per `type` (see SCHEME_SCHEMAS)
// so errors name the right field.
import { Type, type TSchema } from '@sinclair/typebox'
import { IDENTITY_FIELDS, JOIN, LOOPBACK, SCHEME_TYPES } from '../auth/methods.js'
import { ClaimScalar, Claims, defaulted, Duration, HostPort, Roles, Secret, Size, Strict, type Filled } from './schema-parts.js'
import { StateSchema } from './state.js'

/** A route's `roles`: a role, or a role with required claims (a list of values = any of them). */
const RouteRoles = Type.Array(
  Type.Union([
    Type.String({ minLength: 1 }),
    Type.Object({ role: Type.String({ minLength: 1 }), claims: Type.Record(Type.String({ minLength: 1 }), Type.Union([ClaimScalar, Type.Array(ClaimScalar, { minItems: 1 })])) }, Strict),
  ]),
)

const RateLimit = Type.Object(
  {
    max: Type.Integer({ minimum: 1 }),
    window: Duration(),
    by: Type.Optional(defaulted(Type.Union([Type.Literal('identity'), Type.Literal('ip')], { default: 'identity' }))),
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
    trustProxy: Type.Optional(defaulted(Type.Union([Type.Boolean(), Type.Array(Type.String({ minLength: 1 }))], { default: false }))),
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
  { url: Type.String({ minLength: 1 }), timeout: Type.Optional(Duration('30s')), connections: Type.Optional(defaulted(Type.Integer({ minimum: 1, default: 128 }))) },
  Strict,
)

const Concurrency = Type.Object(
  { max: Type.Integer({ minimum: 1 }), by: Type.Optional(defaulted(Type.Union([Type.Literal('identity'), Type.Literal('ip')], { default: 'identity' }))) },
  Strict,
)

// name, roles and claims, then each identity method's own field(s) (auth/methods.ts: bearer, apiKey, mtls).
const Identity = Type.Object({ name: Type.String({ minLength: 1 }), roles: Type.Optional(Roles), claims: Type.Optional(Claims), ...IDENTITY_FIELDS }, Strict)

/** Each scheme type's body (auth/methods.ts), checked once the entry's `type` is known. */
export const SCHEME_SCHEMAS: Readonly<Record<string, TSchema>> = Object.fromEntries(SCHEME_TYPES.map((s) => [s.type, s.schema]))
/** Checked first; the body is then checked against SCHEME_SCHEMAS[type]. */
const SchemeHead = Type.Object({ type: Type.Union(SCHEME_TYPES.map((s) => Type.Literal(s.type))) })

const RouteForward = Type.Object(
  {
    credentials: Type.Optional(Type.Union([Type.Literal('strip'), Type.Literal('keep')])),
    identityHeaders: Type.Optional(Type.Boolean()),
  },
  Strict,
)

/** DESIGN §3.2: `report` decides and logs as usual but forwards anyway. */
const Enforce = (def?: 'on' | 'report') =>
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
    ...LOOPBACK.fields,
    forward: Type.Optional(RouteForward),
    enforce: Type.Optional(Enforce()),
  },
  Strict,
)

export const GatewayConfigSchema = Type.Object(
  {
    version: Type.Literal(1),
    server: Type.Optional(defaulted(Type.Object(Server.properties, { ...Strict, default: {} }))),
    admin: Type.Optional(Type.Object({ listen: Type.Optional(HostPort('127.0.0.1:9901')) }, Strict)),
    // DESIGN §2: OpenTelemetry, off when absent. The URL is checked in compile.ts (FILE:LINE:COL).
    tracing: Type.Optional(
      Type.Object({ otlp: Type.String({ minLength: 1 }), serviceName: Type.Optional(defaulted(Type.String({ minLength: 1, default: 'portcullis' }))) }, Strict),
    ),
    state: Type.Optional(defaulted(Type.Object(State.properties, { ...Strict, default: {} }))),
    upstreams: Type.Record(Type.String({ minLength: 1 }), Upstream),
    identities: Type.Optional(Type.Array(Identity)),
    schemes: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), SchemeHead)),
    [JOIN.key]: Type.Optional(JOIN.schema),
    routes: Type.Array(Route),
    defaults: Type.Optional(
      defaulted(
        Type.Object(
          {
            rateLimit: Type.Optional(Type.Union([RateLimit, Type.Literal(false)])),
            authFailures: Type.Optional(
              Type.Union([Type.Object({ max: Type.Integer({ minimum: 1 }), window: Duration() }, Strict), Type.Literal(false)]),
            ),
            enforce: Type.Optional(defaulted(Enforce('on'))),
          },
          { ...Strict, default: {} },
        ),
      ),
    ),
    forward: Type.Optional(
      defaulted(
        Type.Object(
          {
            identityHeaders: Type.Optional(defaulted(Type.Boolean({ default: true }))),
            credentials: Type.Optional(defaulted(Type.Union([Type.Literal('strip'), Type.Literal('keep')], { default: 'strip' }))),
            assertion: Type.Optional(Type.Object({ key: Secret, ttl: Type.Optional(Duration('60s')) }, Strict)),
          },
          { ...Strict, default: {} },
        ),
      ),
    ),
  },
  Strict,
)

/** A loaded gateway.yaml: validated, every default the schema declares filled in (load.ts). */
export type GatewayConfigFile = Filled<typeof GatewayConfigSchema>
export type RouteFile = Filled<typeof Route>
