// The one registry of auth methods. Each method is one module exporting one descriptor: its part of
// gateway.yaml's schema, the credential it reads (kind, the headers that carry it, a cheap presence
// check) and its compile function. The schema (config/schema.ts), compile (config/compile.ts), ambiguity
// detection (auth/authenticate.ts), the headers stripped before forwarding and those redacted in logs
// (observe/audit.ts) all come from here; none of them names a method. Adding one = its module + one line.
import type { IncomingMessage } from 'node:http'
import { apiKey } from './api-key.js'
import { bearer } from './bearer.js'
import { joinEndpoint } from './join.js'
import { jwtScheme } from './jwt.js'
import { loopback } from './loopback.js'
import { mtls } from './mtls.js'
import { rfc9421Scheme } from './rfc9421.js'
import type { Authenticator, Credential, CredentialKind, IdentityMethod, SchemeType } from './types.js'
import { ucanScheme } from './ucan.js'
import { workerV1Scheme } from './worker-v1.js'

/** Methods configured on `identities:` entries (bearer, apiKey, mtls); their fields appear there in this order. */
const identityMethods = [bearer, apiKey, mtls] as const
/** The `type`s a `schemes.<name>` entry may have. */
export const SCHEME_TYPES: readonly SchemeType[] = [workerV1Scheme, rfc9421Scheme, jwtScheme, ucanScheme]
/** `loopback: allow` on a route: no credential, identity "localhost" (DESIGN §3.3). */
export const LOOPBACK = loopback
/** The `join:` section: the worker join endpoint (DESIGN §4.7). */
export const JOIN = joinEndpoint

export const IDENTITY_METHODS: readonly IdentityMethod[] = identityMethods

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never
/** The fields the identity methods add to an `identities:` entry (schema.ts). */
export const IDENTITY_FIELDS = Object.assign({}, ...identityMethods.map((m) => m.fields)) as UnionToIntersection<(typeof identityMethods)[number]['fields']>

/** Every method's name that routes may use or identities carry: never a scheme's name. */
export const BUILT_IN_METHOD_NAMES: readonly string[] = [...IDENTITY_METHODS.map((m) => m.name), LOOPBACK.name]

/** One credential per kind (static bearer tokens, jwt and ucan schemes share `bearer`), in registry order. */
function byKind(list: readonly Credential[]): Credential[] {
  const out = new Map<CredentialKind, Credential>()
  for (const c of list) {
    const seen = out.get(c.kind)
    if (!seen) out.set(c.kind, c)
    else if (seen !== c) {
      out.set(c.kind, {
        kind: c.kind,
        headers: [...new Set([...seen.headers, ...c.headers])],
        single: seen.single === true || c.single === true,
        present: (req, headers) => seen.present(req, headers) || c.present(req, headers),
      })
    }
  }
  return [...out.values()]
}

/** Every kind of credential portcullis recognizes, whichever route a request is on. */
export const CREDENTIALS: readonly Credential[] = byKind([...IDENTITY_METHODS, ...SCHEME_TYPES, JOIN].map((m) => m.credential))

/** The header names that carry a credential of some method (config may add API-key headers): redacted in logs. */
export const CREDENTIAL_HEADERS: readonly string[] = [...new Set(CREDENTIALS.flatMap((c) => c.headers))]

/** The credentials of one loaded config: the registry's, with the header names the config adds. */
export interface RecognizedCredentials {
  /** Every header that carries a credential: dropped before forwarding unless `credentials: keep`. */
  readonly headers: ReadonlySet<string>
  /**
   * The kinds of credential a request carries (a client certificate, in no header, never counts), or
   * 'duplicate' when a kind that allows one header field comes twice (two Authorization, two API keys).
   */
  present(req: IncomingMessage): Set<CredentialKind> | 'duplicate'
}

/** Compiled at load: `compiled` are the config's authenticators, whose headers add to their kind's (apiKeyHeader). */
export function recognizedCredentials(compiled: Iterable<Authenticator>): RecognizedCredentials {
  const authenticators = [...compiled]
  const inHeaders = CREDENTIALS.map((c) => {
    const headers = [...new Set([...c.headers, ...authenticators.filter((a) => a.kind === c.kind).flatMap((a) => a.credentialHeaders)])]
    return { credential: c, headers }
  }).filter((c) => c.headers.length > 0)
  // header name → the index of its single-field kind (the first kind to name it), for one pass over the raw headers.
  const single = new Map<string, number>()
  inHeaders.forEach((c, i) => {
    if (c.credential.single) for (const h of c.headers) if (!single.has(h)) single.set(h, i)
  })
  return {
    headers: new Set(inHeaders.flatMap((c) => c.headers)),
    present(req) {
      const raw = req.rawHeaders
      const fields = new Array<number>(inHeaders.length).fill(0)
      for (let i = 0; i < raw.length; i += 2) {
        const k = single.get(raw[i]!.toLowerCase())
        if (k !== undefined && ++fields[k]! > 1) return 'duplicate'
      }
      const kinds = new Set<CredentialKind>()
      for (const c of inHeaders) if (c.credential.present(req, c.headers)) kinds.add(c.credential.kind)
      return kinds
    },
  }
}
