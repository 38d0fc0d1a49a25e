// The assertion key compiled once per loaded config (DESIGN §3.1, §8): the imported Ed25519 private key,
// its public JWK with an RFC 7638 kid, and the constant protected header. Never logs or exports the key.
import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'

/** Explicit JWT typing (RFC 8725 §3.11): an assertion cannot be mistaken for another kind of token. */
export const ASSERTION_TYP = 'portcullis-assertion+jwt'

export interface AssertionSigner {
  key: KeyObject
  /** The public key as published on /jwks.json. */
  jwk: JsonWebKey & { kid: string }
  /** base64url of the protected header, the same for every assertion of this key. */
  header: string
  ttlS: number
}

/** RFC 7638 thumbprint of an Ed25519 JWK: base64url SHA-256 of its required members in order. */
export function jwkThumbprint(jwk: { crv?: string; kty?: string; x?: string }): string {
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url')
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

/** The signer of a key that passed `assertionKeyProblem`. */
export function compileAssertionSigner(pem: string, ttlMs: number): AssertionSigner {
  const key = createPrivateKey(pem)
  const pub = createPublicKey(key).export({ format: 'jwk' })
  const kid = jwkThumbprint(pub)
  const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid, typ: ASSERTION_TYP })).toString('base64url')
  return { key, jwk: { kty: pub.kty, crv: pub.crv, x: pub.x, kid, alg: 'EdDSA', use: 'sig' } as JsonWebKey & { kid: string }, header, ttlS: Math.max(1, Math.ceil(ttlMs / 1000)) }
}
