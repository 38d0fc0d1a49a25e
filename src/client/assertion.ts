// Backend side of DESIGN §8: verify `x-auth-assertion` against the gateway's /jwks.json (or its
// public key) and against the request the backend actually received. Pure and synchronous.
import { createPublicKey, KeyObject, verify, type JsonWebKey } from 'node:crypto'
import { verifyContentDigest } from '../auth/content-digest.js'
import { ASSERTION_TYP, type AssertionClaims } from '../proxy/assertion.js'

export type { AssertionClaims }

export interface VerifyAssertionOptions {
  /** The gateway's /jwks.json document; the key is chosen by the assertion's `kid`. */
  jwks?: { keys: readonly JsonWebKey[] }
  /** Or one public key: a KeyObject, a PEM string, or a JWK. */
  key?: KeyObject | string | JsonWebKey
  /** This backend's upstream name in the gateway config (the `aud` claim). */
  audience: string
  /** The request method as received. */
  method: string
  /** The request target as received (Node's `req.url`): path and query, exactly. */
  pathAndQuery?: string
  /** Or the full URL (its path and query are compared); an origin-form `/path?q` is taken as is. */
  url?: string | URL
  /**
   * The request body as received. When the assertion carries `cdg` the body is required and must
   * match it; a non-empty body without `cdg` is refused (the gateway signs every body it forwards).
   */
  body?: string | Uint8Array
  /** Seconds of clock difference allowed on iat / exp; default 5. */
  clockTolerance?: number
  /** Current time in Unix ms; default Date.now(). */
  now?: number
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AssertionError'
  }
}

const importedSets = new WeakMap<object, Map<string, KeyObject>>()

function keyFrom(input: KeyObject | string | JsonWebKey): KeyObject {
  if (typeof input === 'string') return createPublicKey(input)
  if (input instanceof KeyObject) return input
  return createPublicKey({ key: input as JsonWebKey, format: 'jwk' })
}

function keyForKid(options: VerifyAssertionOptions, kid: unknown): KeyObject {
  if (options.key !== undefined) return keyFrom(options.key)
  const jwks = options.jwks
  if (!jwks || !Array.isArray(jwks.keys)) throw new AssertionError('verifyAssertion needs `jwks` or `key`')
  if (typeof kid !== 'string') throw new AssertionError('assertion has no kid')
  let keys = importedSets.get(jwks)
  if (!keys) {
    keys = new Map()
    for (const jwk of jwks.keys) {
      if (typeof jwk.kid !== 'string' || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') continue
      keys.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }))
    }
    importedSets.set(jwks, keys)
  }
  const key = keys.get(kid)
  if (!key) throw new AssertionError('assertion kid is not in the JWKS')
  return key
}

function decodeJson(part: string, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {
    // fall through
  }
  throw new AssertionError(`assertion ${what} is not a JSON object`)
}

function expectedTarget(options: VerifyAssertionOptions): string {
  if (options.pathAndQuery !== undefined) return options.pathAndQuery
  if (options.url === undefined) throw new AssertionError('verifyAssertion needs `pathAndQuery` or `url`')
  if (typeof options.url === 'string' && options.url.startsWith('/')) return options.url
  const u = new URL(options.url)
  return u.pathname + u.search
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string')

/**
 * The assertion's claims when it is signed by the gateway's key and bound to this request:
 * audience, method, path and query, body digest, and time. Throws AssertionError otherwise.
 */
export function verifyAssertion(token: string | string[] | undefined, options: VerifyAssertionOptions): AssertionClaims {
  if (typeof token !== 'string') throw new AssertionError('missing or repeated x-auth-assertion')
  const parts = token.split('.')
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) throw new AssertionError('assertion is not a compact JWS')
  const header = decodeJson(parts[0]!, 'header')
  if (header.alg !== 'EdDSA') throw new AssertionError('assertion alg must be EdDSA')
  if (header.typ !== ASSERTION_TYP) throw new AssertionError('assertion typ is wrong')
  if (header.crit !== undefined) throw new AssertionError('assertion has unsupported crit parameters')
  const key = keyForKid(options, header.kid)
  const signature = Buffer.from(parts[2]!, 'base64url')
  if (!verify(null, Buffer.from(parts[0] + '.' + parts[1]), key, signature)) throw new AssertionError('assertion signature is invalid')

  const c = decodeJson(parts[1]!, 'payload')
  if (typeof c.sub !== 'string' || !isStrings(c.roles) || !isStrings(c.amr) || typeof c.aud !== 'string' || typeof c.htm !== 'string' || typeof c.htu !== 'string' || typeof c.jti !== 'string' || typeof c.iat !== 'number' || typeof c.exp !== 'number' || (c.cdg !== undefined && typeof c.cdg !== 'string')) {
    throw new AssertionError('assertion claims are malformed')
  }
  const tolerance = options.clockTolerance ?? 5
  const nowS = (options.now ?? Date.now()) / 1000
  if (c.exp <= nowS - tolerance) throw new AssertionError('assertion expired')
  if (c.iat > nowS + tolerance) throw new AssertionError('assertion issued in the future')
  if (c.aud !== options.audience) throw new AssertionError('assertion is for another audience')
  if (c.htm !== options.method) throw new AssertionError('assertion is for another method')
  if (c.htu !== expectedTarget(options)) throw new AssertionError('assertion is for another path or query')
  const body = typeof options.body === 'string' ? Buffer.from(options.body, 'utf8') : options.body
  if (c.cdg !== undefined) {
    if (body === undefined) throw new AssertionError('assertion binds a body: pass options.body')
    if (verifyContentDigest(c.cdg, body) !== 'ok') throw new AssertionError('assertion is for another body')
  } else if (body !== undefined && body.length > 0) throw new AssertionError('assertion binds no body, but the request has one')
  return c as unknown as AssertionClaims
}
