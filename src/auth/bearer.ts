// `bearer`: static tokens in `Authorization: Bearer <token>` (DESIGN §4.1). Rotation lists are just
// several digests for one identity. Never logs or returns the token, only its fingerprint.
import type { IncomingMessage } from 'node:http'
import { Type } from '@sinclair/typebox'
import { Secret } from '../config/schema-parts.js'
import { eachEntry } from '../config/types.js'
import { isStoredDigest } from '../config/secrets.js'
import type { Authenticator, AuthOutcome, AuthRequest, Credential, IdentityMethod } from './types.js'
import { digestKey, keyedFingerprint } from './credential.js'
import { CredentialTable, credentialOwner, eachStaticSecret } from './static-credentials.js'

/** RFC 6750 §2.1 b64token: what a bearer token may be. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

export function isB64Token(token: string): boolean {
  return B64TOKEN.test(token)
}

/**
 * The token of an `Authorization: Bearer` header, or undefined when there is none (DESIGN §4.1):
 * scheme word any case, then spaces or tabs; only spaces and tabs are trimmed around the token
 * (String#trim would also drop U+00A0 and other Unicode spaces, accepting a token that was not
 * sent). An empty header or empty token is missing. The token is returned as is, b64token or not:
 * the authenticator refuses one that is not.
 */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization
  if (header === undefined) return undefined
  let start = 0
  let end = header.length
  while (start < end && isSpaceOrTab(header.charCodeAt(start))) start++
  while (end > start && isSpaceOrTab(header.charCodeAt(end - 1))) end--
  if (end - start < 6 || header.slice(start, start + 6).toLowerCase() !== 'bearer') return undefined
  let at = start + 6
  if (at === end) return undefined // `Bearer` alone: no token
  if (!isSpaceOrTab(header.charCodeAt(at))) return undefined // `Bearerx`: another scheme
  while (at < end && isSpaceOrTab(header.charCodeAt(at))) at++
  return at === end ? undefined : header.slice(at, end)
}

/** Space or horizontal tab: the only whitespace HTTP allows around a field value or its parts. */
export function isSpaceOrTab(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/** `value` without surrounding spaces and tabs (only those). */
export function trimSpacesAndTabs(value: string): string {
  let start = 0
  let end = value.length
  while (start < end && isSpaceOrTab(value.charCodeAt(start))) start++
  while (end > start && isSpaceOrTab(value.charCodeAt(end - 1))) end--
  return start === 0 && end === value.length ? value : value.slice(start, end)
}

/**
 * `Authorization: Bearer`: static tokens, and the jwt and ucan schemes too (one kind: a request carrying
 * a bearer token is not ambiguous however many of them a route accepts). Two Authorization headers are.
 */
export const BEARER_CREDENTIAL: Credential = {
  kind: 'bearer',
  headers: ['authorization'],
  single: true,
  present: (req) => bearerToken(req) !== undefined,
}

export function createBearerAuthenticator(tokens: CredentialTable): Authenticator {
  return {
    name: 'bearer',
    kind: BEARER_CREDENTIAL.kind,
    local: true,
    credentialHeaders: BEARER_CREDENTIAL.headers,
    challenge: 'Bearer realm="portcullis"',
    present: (req) => bearerToken(req) !== undefined,
    authenticate(req: AuthRequest): AuthOutcome {
      const token = bearerToken(req.raw)
      if (token === undefined) return { kind: 'absent' }
      const digest = digestKey(token)
      const fp = keyedFingerprint(digest)
      // Not b64token: no configured token can equal it (config refuses such tokens), so it is refused as such.
      const owner = isB64Token(token) ? tokens.findKey(digest) : undefined
      if (!owner) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid token', fp }
      const identity = owner.claims ? { name: owner.name, roles: owner.roles, method: 'bearer', fp, claims: owner.claims } : { name: owner.name, roles: owner.roles, method: 'bearer', fp }
      return { kind: 'identity', identity }
    },
  }
}

const fields = { bearer: Type.Optional(Type.Union([Secret, Type.Array(Secret, { minItems: 1 })])) }

/** `identities[].bearer`: a token, or a rotation list of them (all valid). */
export const bearer: IdentityMethod<typeof fields> = {
  name: 'bearer',
  fields,
  unused: 'no identity has a bearer',
  credential: BEARER_CREDENTIAL,
  compile(identities, ctx) {
    const tokens = new CredentialTable()
    eachEntry(ctx, identities, (i) => ['identities', i], (id, i) => {
      const owner = credentialOwner(id)
      eachStaticSecret(id.bearer, ['identities', i, 'bearer'], ctx, (s, path) => {
        // A token no client could send in `Authorization: Bearer` (RFC 6750 b64token) is a mistake; never echoed.
        if (!isStoredDigest(s) && !isB64Token(s)) ctx.error(path, 'a bearer token must be RFC 6750 b64token text (letters, digits, -._~+/ then optional =)')
        else if (!tokens.add(s, owner)) ctx.error(path, 'this token is already given to another identity')
      })
    })
    return tokens.size ? createBearerAuthenticator(tokens) : undefined
  },
}
