// DESIGN §8: `x-auth-assertion`, a compact JWS (EdDSA) binding the identity to exactly this forwarded
// request (method, path and query, body digest), and the public JWKS backends verify it with.
// The private key is imported once per loaded config; nothing here logs a key or a token.
import { createHash, createPrivateKey, createPublicKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { Gateway } from '../config/compile.js'
import type { Runtime } from '../runtime.js'
import { computeContentDigest } from '../auth/content-digest.js'

export const ASSERTION_HEADER = 'x-auth-assertion'
/** Explicit JWT typing (RFC 8725 §3.11): an assertion cannot be mistaken for another kind of token. */
export const ASSERTION_TYP = 'portcullis-assertion+jwt'

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

interface Signer {
  key: KeyObject
  /** The public key as published on /jwks.json. */
  jwk: JsonWebKey & { kid: string }
  /** base64url of the protected header, the same for every assertion of this key. */
  header: string
  ttlS: number
}

/** The key's problem in words (for a config error), or undefined when it is an Ed25519 private key. */
export function assertionKeyProblem(pem: string): string | undefined {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    return 'is not a PEM private key'
  }
  return key.asymmetricKeyType === 'ed25519' ? undefined : `must be an Ed25519 private key (got ${key.asymmetricKeyType ?? 'unknown'})`
}

/** RFC 7638 thumbprint of an Ed25519 JWK: base64url SHA-256 of its required members in order. */
export function jwkThumbprint(jwk: { crv?: string; kty?: string; x?: string }): string {
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url')
}

/** One imported key per loaded config (a reload brings a new Gateway, hence a new entry). */
const signers = new WeakMap<Gateway, Signer | null>()

function signerFor(gw: Gateway): Signer | undefined {
  let s = signers.get(gw)
  if (s === undefined) {
    s = null
    const spec = gw.forward.assertion
    if (spec && assertionKeyProblem(spec.keyPem) === undefined) {
      const key = createPrivateKey(spec.keyPem)
      const pub = createPublicKey(key).export({ format: 'jwk' })
      const kid = jwkThumbprint(pub)
      const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid, typ: ASSERTION_TYP })).toString('base64url')
      s = { key, jwk: { kty: pub.kty, crv: pub.crv, x: pub.x, kid, alg: 'EdDSA', use: 'sig' } as JsonWebKey & { kid: string }, header, ttlS: Math.max(1, Math.ceil(spec.ttlMs / 1000)) }
    }
    signers.set(gw, s)
  }
  return s ?? undefined
}

/** The admin listener's /jwks.json: `{keys: [the assertion public key]}`, or undefined (404) when assertions are off. */
export function assertionJwks(gw: Gateway): { keys: JsonWebKey[] } | undefined {
  const s = signerFor(gw)
  return s ? { keys: [s.jwk] } : undefined
}

export function signAssertionClaims(gw: Gateway, claims: AssertionClaims): string | undefined {
  const s = signerFor(gw)
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
  const s = signerFor(gw)
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
