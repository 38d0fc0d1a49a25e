// The contract every auth method implements. An authenticator looks at one request and says:
// "no credential of mine here", "this is who sent it", or "refused, with this code".
// It never logs and never puts a credential into its result: only fingerprints.
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { TObject, TProperties } from '@sinclair/typebox'
import type { ErrorCode } from '../errors.js'
import type { Filled, FilledObject } from '../config/schema-parts.js'
import type { CompileContext, ConfigPath } from '../config/types.js'
import type { Authorities } from './authorities.js'

export interface Identity {
  /**
   * x-auth-identity (DESIGN §3.3): an `identities:` name (`orchestratord`), `<scheme>:<subject>`
   * (`workers:worker-1`, `signed:worker-7`, `jobs:<sub>`), `join:<keyid>`, `localhost`, `anonymous`.
   */
  name: string
  roles: readonly string[]
  /** x-auth-method and the log's authMethod: `bearer`, `apiKey`, `mtls`, or the scheme's name. */
  method: string
  /** The audit line's `fp` and x-auth-fingerprint: `token:abcdef` or `key:abcdef`. */
  fp: string
  /** Signed schemes: accepted once. The pipeline asks the replay store after authorization. */
  replay?: ReplayMark
  /** A group of methods (DESIGN §4.9): the replay marks of its other members, each accepted once too. */
  moreReplays?: readonly ReplayMark[]
  /** Attributes a route's `{role, claims}` entry may require (DESIGN §4.9): JWT payload, identity or scheme claims. */
  claims?: Readonly<Record<string, unknown>>
  /** Unix ms after which the credential is no longer valid (JWT exp), if it has one. */
  expiresAt?: number
  /** Route-dependent authorization the credential itself carries (a UCAN's command and policies); false → 403. */
  authorize?(route: { command: string | null }): boolean
}

export interface ReplayMark {
  key: string
  ttlMs: number
}

/** Every replay mark an identity carries: its own and, for a group, each other member's. */
export function replayMarks(identity: Identity): ReplayMark[] {
  return [...(identity.replay ? [identity.replay] : []), ...(identity.moreReplays ?? [])]
}

export type AuthOutcome =
  | { kind: 'absent' }
  | { kind: 'identity'; identity: Identity }
  /** `claimed`: the name a refused credential claims (keyid, x-worker-id), as sent; never an identity. */
  | { kind: 'deny'; code: ErrorCode; message?: string; fp?: string; claimed?: string }

/** What an authenticator may read of a request. Headers are Node's lower-cased headers. */
export interface AuthRequest {
  raw: IncomingMessage
  method: string
  /** The canonical path exactly as received (no query). */
  path: string
  /** The query string as received, including the leading `?`, or ''. */
  query: string
  /** The full request target as received (path + query). */
  target: string
  /** The request body, present only when the authenticator asked for it via `needsBody`. */
  body?: Buffer
  /** true when the listener is TLS (join hands out keys in clear only then). */
  tls: boolean
  /** Current time in Unix ms (one clock reading per request, so tests can reason about it). */
  now: number
  /** `server.authorities`: the names this gateway answers to; absent = @authority not checked. */
  authorities?: Authorities
}

export interface Authenticator {
  /** The name routes use in `auth: [...]`: `bearer`, `apiKey`, `mtls`, or a scheme name. */
  readonly name: string
  /** Credential kind for ambiguity detection; two different kinds present → AMBIGUOUS_CREDENTIALS. */
  readonly kind: CredentialKind
  /** Headers that carry this credential (its method's, and any the config names: apiKeyHeader); auth/methods.ts strips them. */
  readonly credentialHeaders: readonly string[]
  /** One WWW-Authenticate challenge for 401 responses on routes that accept this method. */
  readonly challenge: string
  /** The 401 message when this is the route's only method and no credential is present. */
  readonly missingMessage?: string
  /** An all-of group (DESIGN §4.9): its members, in the order the route lists them. */
  readonly members?: readonly Authenticator[]
  /**
   * Answers from the compiled config alone (a digest lookup, a certificate's fields): no body, no store, no
   * remote key set, no replay mark, no costly verification. A route of only such methods sends its throttle
   * read and rate-limit count to the store together (steps/admit.ts).
   */
  readonly local?: true
  /** Why requests needing this method cannot be served yet (a remote key set never fetched); /readyz reports it. */
  notReady?(): string | undefined
  /** Called by `serve` at start and on each reload (never by `check`): the first fetch of a remote key set. */
  start?(): void
  /** Does this request carry a credential of this method (cheap header check, no crypto)? */
  present(req: IncomingMessage): boolean
  /** Must the body be read (up to bodyLimit) before authenticate()? */
  needsBody?(req: IncomingMessage): boolean
  authenticate(req: AuthRequest): AuthOutcome | Promise<AuthOutcome>
}

/**
 * A kind of credential, for ambiguity detection: `bearer` covers static tokens, JWT and UCAN schemes
 * alike (all ride in Authorization: Bearer); `apiKey`, `worker-v1`, `signature`, `mtls`.
 */
export type CredentialKind = string

/**
 * How a request carries one kind of credential. The registry (auth/methods.ts) hands these to ambiguity
 * detection (any two kinds present), to forwarding (the headers are stripped) and to the logger (redacted).
 */
export interface Credential {
  readonly kind: CredentialKind
  /**
   * Lower-case names of the headers that carry it. Empty for a credential not in a header (a client
   * certificate), which never makes a request ambiguous.
   */
  readonly headers: readonly string[]
  /** At most one header field of `headers` per request: a second one is AMBIGUOUS_CREDENTIALS. */
  readonly single?: boolean
  /** Cheap, no crypto: does the request carry one? `headers`: the ones above plus any the config adds (apiKeyHeader). */
  present(req: IncomingMessage, headers: readonly string[]): boolean
}

export function isTlsSocket(req: IncomingMessage): req is IncomingMessage & { socket: TLSSocket } {
  return (req.socket as TLSSocket).encrypted === true
}

/** What a method's compile may know of the rest of the config. */
export interface CompileFacts {
  /** server.tls.clientCa is set: client certificates are requested and verified. */
  clientCa: boolean
}

/** An `identities:` entry as every identity method sees it; each reads its own field(s). */
export type IdentityEntry = {
  name: string
  roles?: string[]
  claims?: Record<string, unknown>
}

/** A method configured on `identities:` entries (bearer, apiKey, mtls): one Authenticator for all of them. */
export interface IdentityMethod<F extends TProperties = TProperties> {
  /** What routes name in `auth: [...]`, and x-auth-method. */
  readonly name: string
  /** Its field(s) of an `identities:` entry; the one named like the method holds the credential. */
  readonly fields: F
  readonly credential: Credential
  /** Why a route cannot name it when no authenticator compiled: `no identity has a bearer`. */
  readonly unused: string
  /**
   * Every `identities:` entry, in order (errors at `['identities', index, …]`) → the authenticator of those
   * that use this method, or undefined when none does. Secrets are resolved here, once.
   */
  compile(identities: ReadonlyArray<IdentityEntry & FilledObject<F>>, ctx: CompileContext, facts: CompileFacts): Authenticator | undefined
}

/** A `schemes.<name>` type (worker-v1, rfc9421, jwt, ucan): each entry compiles to one Authenticator. */
export interface SchemeType<S extends TObject = TObject> {
  /** The entry's `type`. */
  readonly type: string
  /** The schema of a whole `schemes.<name>` entry of this type, `type` included. */
  readonly schema: S
  readonly credential: Credential
  /** A route that accepts it must name the `command` it serves (DESIGN §4.8). */
  readonly routeCommand?: boolean
  /** One entry → its authenticator, or undefined with the errors recorded at `path`. Secrets are resolved here, once. */
  compile(name: string, spec: Filled<S>, ctx: CompileContext, path: ConfigPath, facts: CompileFacts): Authenticator | undefined
}
