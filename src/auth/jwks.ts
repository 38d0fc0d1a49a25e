// A JWKS document → the public keys a jwt scheme verifies with (EdDSA / ES256 only), for a key set read
// from a file (jwt.ts) or fetched from a URL (jwks-remote.ts). Never prints key material in a message.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'

export interface JwtVerificationKey {
  key: KeyObject
  algorithms: readonly string[]
  kid?: string
}

function algorithmsFor(jwk: JsonWebKey): string[] | undefined {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519']
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return ['ES256']
  return undefined
}

/** A JWKS document's keys → verification keys, or a message naming what is wrong (never key material). */
export function jwksVerificationKeys(text: string): { ok: true; keys: JwtVerificationKey[] } | { ok: false; message: string } {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return { ok: false, message: 'is not valid JSON' }
  }
  const list = (doc as { keys?: unknown })?.keys
  if (!Array.isArray(list) || list.length === 0) return { ok: false, message: 'must be a JWKS: {"keys": [...]} with at least one key' }
  const keys: JwtVerificationKey[] = []
  for (const [i, jwk] of (list as JsonWebKey[]).entries()) {
    if (jwk === null || typeof jwk !== 'object') return { ok: false, message: `keys[${i}] is not a JSON object` }
    if (jwk.d !== undefined) return { ok: false, message: `keys[${i}] holds a private key; a JWKS for verification holds public keys only` }
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    let algorithms = algorithmsFor(jwk)
    if (!algorithms) return { ok: false, message: `keys[${i}]: only Ed25519 (EdDSA) and P-256 (ES256) public keys are supported` }
    if (typeof jwk.alg === 'string') {
      if (!algorithms.includes(jwk.alg)) return { ok: false, message: `keys[${i}]: alg "${jwk.alg}" does not fit a ${String(jwk.crv)} key` }
      algorithms = jwk.alg === 'ES256' ? ['ES256'] : ['EdDSA', 'Ed25519']
    }
    let key: KeyObject
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' })
    } catch {
      return { ok: false, message: `keys[${i}] is not a valid public key` }
    }
    keys.push({ key, algorithms, ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}) })
  }
  if (keys.length === 0) return { ok: false, message: 'has no signature key (use: "sig")' }
  return { ok: true, keys }
}

