// DESIGN §8: `x-auth-assertion`, a compact JWS (EdDSA) binding the identity to exactly this forwarded
// request (method, path and query, body digest), and the public JWKS backends verify it with.
// The key is compiled with the config (assertion-signer.ts); nothing here logs a key or a token.
import { sign, type JsonWebKey } from 'node:crypto'
import type { Gateway } from '../config/compile.js'
import type { Runtime } from '../runtime.js'
import { computeContentDigest } from '../auth/content-digest.js'
export { assertionKeyProblem, jwkThumbprint, ASSERTION_TYP } from './assertion-signer.js'

export const ASSERTION_HEADER = 'x-auth-assertion'

export interface AssertionClaims {
  sub: string
  roles: string[]
  amr: string[]
  aud: string
  htm: string
  htu: string
  cdg?: string
  jti: string
  iat: number
  exp: number
}

/** The admin listener's /jwks.json: `{keys: [the assertion public key]}`, or undefined (404) when assertions are off. */
export function assertionJwks(gw: Gateway): { keys: JsonWebKey[] } | undefined {
  const s = gw.forward.assertion?.signer
  return s ? { keys: [s.jwk] } : undefined
}

export function signAssertionClaims(gw: Gateway, claims: AssertionClaims): string | undefined {
  const s = gw.forward.assertion?.signer
  if (!s) return undefined
  const input = s.header + '.' + Buffer.from(JSON.stringify(claims)).toString('base64url')
  return input + '.' + sign(null, Buffer.from(input), s.key).toString('base64url')
}

/**
 * Runtime.assert: the header for one forwarded request. `htu` is the path and query the upstream
 * receives (its base path included). `cdg` is present exactly when the request has a non-empty
 * body — the pipeline buffers bodies of authenticated requests while assertions are on.
 */
export const assertRequest: NonNullable<Runtime['assert']> = async (gw, a): Promise<Record<string, string>> => {
  const s = gw.forward.assertion?.signer
  if (!s) return {}
  const iat = Math.floor(Date.now() / 1000)
  const claims: AssertionClaims = {
    sub: a.identity.name,
    roles: [...a.identity.roles],
    amr: [a.identity.method],
    aud: a.route.upstream.name,
    htm: a.method,
    htu: a.route.upstream.basePath + a.target,
    ...(a.body && a.body.length > 0 ? { cdg: computeContentDigest(a.body, 'sha-256') } : {}),
    jti: a.reqId,
    iat,
    exp: iat + s.ttlS,
  }
  const token = signAssertionClaims(gw, claims)
  return token ? { [ASSERTION_HEADER]: token } : {}
}
