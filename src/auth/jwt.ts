// DESIGN §4.6: `type: jwt` schemes — short-lived tokens in `Authorization: Bearer`, HS256 with a
// secret or EdDSA / ES256 with a JWKS of public keys. Keys and allowed algorithms are fixed at load;
// `none` and algorithm confusion are impossible by construction. Never logs or returns a token.
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject, type X509Certificate } from 'node:crypto'
import { errors, jwtVerify, type JWTPayload, type JWTVerifyOptions, type ProtectedHeaderParameters } from 'jose'
import { Type } from '@sinclair/typebox'
import { defaulted, Duration, Roles, Secret, Strict, type Filled } from '../config/schema-parts.js'
import { durationMs } from '../config/types.js'
import { BEARER_CREDENTIAL, bearerToken } from './bearer.js'
import { jwksVerificationKeys, type JwtVerificationKey } from './jwks.js'
import { isRemoteJwks, jwksUrlProblem, sharedRemoteKeySet, type KeySource } from './jwks-remote.js'
import { sha256, tokenFingerprint } from './credential.js'
import { handshakePeer } from './tls-peer.js'
import { schemeIdentity } from './identity-names.js'
import { isTlsSocket, type AuthOutcome, type AuthRequest, type Authenticator, type CompileFacts, type SchemeType } from './types.js'
import type { CompileContext, ConfigPath } from '../config/types.js'

const schema = Type.Object(
  {
    type: Type.Literal('jwt'),
    issuer: Type.Optional(Type.String({ minLength: 1 })),
    audience: Type.Optional(Type.String({ minLength: 1 })),
    secret: Type.Optional(Secret),
    jwks: Type.Optional(Type.String({ minLength: 1, description: 'a JWKS file, or an https:// URL (http:// only to a loopback address)' })),
    jwksCa: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA that verifies an https:// jwks URL (a private CA)' })),
    jwksCacheTtl: Type.Optional(Duration('10m')),
    maxTtl: Type.Optional(Duration('15m')),
    rolesClaim: Type.Optional(defaulted(Type.String({ minLength: 1, default: 'roles' }))),
    roles: Type.Optional(Roles),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'jti or sub values refused with KEY_REVOKED' })),
    bindCertificate: Type.Optional(defaulted(Type.Boolean({ default: false, description: 'accept only tokens whose cnf.x5t#S256 is the client certificate (RFC 8705)' }))),
  },
  Strict,
)
export type JwtSchemeFile = Filled<typeof schema>

/** Seconds of clock difference tolerated on exp, nbf and iat (DESIGN §4.6). */
export const CLOCK_TOLERANCE_S = 30
/** Printable ASCII, spaces only inside: the identity becomes the x-auth-identity header. */
export const JWT_SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/
/** A role also appears in the comma-separated x-auth-roles header. */
export const JWT_ROLE = /^[\x21-\x2b\x2d-\x7e]{1,128}$/

/** One verification key of a scheme and the JWS algorithms it may verify. */

export interface JwtOptions {
  name: string
  /** Fixed keys (a secret, a JWKS file) or a key set fetched from a URL (jwks-remote.ts). */
  keys: readonly JwtVerificationKey[] | (KeySource & { start(): void; notReady(): string | undefined })
  issuer?: string
  audience?: string
  maxTtlMs: number
  rolesClaim: string
  /** Roles every valid token gets, in addition to its rolesClaim. */
  roles: readonly string[]
  /** `jti` or `sub` values refused with KEY_REVOKED (DESIGN §4.6). */
  revoked?: readonly string[]
  /** RFC 8705 §3: only a token whose cnf.x5t#S256 names the connection's verified client certificate. */
  bindCertificate?: boolean
}

type Verdict = { ok: true; payload: JWTPayload } | { ok: false; expired: boolean; unavailable?: true }

export function createJwtAuthenticator(options: JwtOptions): Authenticator {
  const { name, maxTtlMs, rolesClaim } = options
  const revoked = new Set(options.revoked ?? [])
  const remote = Array.isArray(options.keys) ? undefined : (options.keys as Exclude<JwtOptions['keys'], readonly JwtVerificationKey[]>)
  // A remote set's algorithms are those of the key types it may hold (jwksVerificationKeys admits no other).
  const algorithms = remote ? ['EdDSA', 'Ed25519', 'ES256'] : [...new Set((options.keys as readonly JwtVerificationKey[]).flatMap((k) => k.algorithms))]
  const verifyOptions: JWTVerifyOptions = {
    algorithms,
    clockTolerance: CLOCK_TOLERANCE_S,
    requiredClaims: ['exp'],
    ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
    ...(options.audience !== undefined ? { audience: options.audience } : {}),
  }
  /** Keys that may verify this header: its alg allowed for the key, and its kid when both have one. */
  const candidates = (keys: readonly JwtVerificationKey[], header: ProtectedHeaderParameters): JwtVerificationKey[] =>
    keys.filter((k) => typeof header.alg === 'string' && k.algorithms.includes(header.alg) && (header.kid === undefined || k.kid === undefined || header.kid === k.kid))

  async function verify(token: string, now: number): Promise<Verdict> {
    let header: ProtectedHeaderParameters
    try {
      header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as ProtectedHeaderParameters
    } catch {
      return { ok: false, expired: false }
    }
    if (header === null || typeof header !== 'object') return { ok: false, expired: false }
    let keys = remote ? remote.current(now) : (options.keys as readonly JwtVerificationKey[])
    if (keys === undefined) return { ok: false, expired: false, unavailable: true }
    // A kid the remote set lacks: the issuer may have rotated (re-fetched at most once per cool-down).
    if (remote && typeof header.kid === 'string' && !keys.some((k) => k.kid === header.kid)) keys = (await remote.refreshForUnknownKid(now)) ?? keys
    let expired = false
    for (const k of candidates(keys, header)) {
      try {
        const { payload } = await jwtVerify(token, k.key, { ...verifyOptions, currentDate: new Date(now) })
        return { ok: true, payload }
      } catch (err) {
        // Time faults are reported only for a token whose signature verified (jose checks it first).
        if (isTimeFault(err)) expired = true
      }
    }
    return { ok: false, expired }
  }

  async function authenticate(req: AuthRequest): Promise<AuthOutcome> {
    const token = bearerToken(req.raw)
    if (token === undefined) return { kind: 'absent' }
    const fp = tokenFingerprint(token)
    const invalid: AuthOutcome = { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid token', fp }
    if (token.length > 16_384 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return invalid
    const v = await verify(token, req.now)
    if (!v.ok && v.unavailable) return { kind: 'deny', code: 'STATE_UNAVAILABLE', message: 'Key set unavailable', fp }
    if (!v.ok) return refused(v.expired ? 'TOKEN_EXPIRED' : 'INVALID_CREDENTIALS', token, fp)
    const { payload } = v
    const exp = payload.exp as number
    const nowS = req.now / 1000
    const sub = payload.sub
    // iat in the future is "not yet valid"; a lifetime beyond maxTtl is refused even if unexpired.
    if (payload.iat !== undefined && payload.iat > nowS + CLOCK_TOLERANCE_S) return refused('TOKEN_EXPIRED', token, fp)
    const lifetimeS = exp - (payload.iat ?? nowS)
    if (lifetimeS * 1000 > maxTtlMs) return refused('TOKEN_EXPIRED', token, fp)
    if (typeof sub !== 'string' || !JWT_SUBJECT.test(sub)) return invalid
    const claimed = payload[rolesClaim]
    if (claimed !== undefined && (!Array.isArray(claimed) || !claimed.every((r) => typeof r === 'string' && JWT_ROLE.test(r)))) return invalid
    const jti = payload.jti
    if (revoked.has(sub) || (typeof jti === 'string' && revoked.has(jti))) return { kind: 'deny', code: 'KEY_REVOKED', fp, claimed: sub }
    if (options.bindCertificate && !boundToPeer(payload, req)) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: NOT_BOUND, fp, claimed: sub }
    const roles = [...new Set([...options.roles, ...((claimed as string[] | undefined) ?? [])])]
    // Claims = the verified payload (DESIGN §4.9); read by own property only (auth/claims.ts).
    return { kind: 'identity', identity: { name: schemeIdentity(name, sub), roles, method: name, fp, expiresAt: exp * 1000, claims: payload } }
  }

  return {
    name,
    kind: BEARER_CREDENTIAL.kind,
    ...(remote ? { start: () => remote.start(), notReady: () => remote.notReady() } : {}),
    credentialHeaders: BEARER_CREDENTIAL.headers,
    challenge: 'Bearer realm="portcullis"',
    missingMessage: 'Missing token',
    present: (req) => bearerToken(req) !== undefined,
    authenticate,
  }
}

export const NOT_BOUND = 'Token not bound to this certificate'

/**
 * RFC 8705 §3.1: `cnf.x5t#S256` is base64url SHA-256 of the DER of the certificate verified in this
 * connection's own handshake (tls-peer.ts) — never one a renegotiation presented later.
 */
function boundToPeer(payload: JWTPayload, req: AuthRequest): boolean {
  if (!isTlsSocket(req.raw)) return false
  const peer = handshakePeer(req.raw.socket)
  if (!peer || !peer.authorized) return false
  const cnf = payload.cnf as { 'x5t#S256'?: unknown } | undefined
  const thumbprint = cnf !== null && typeof cnf === 'object' ? cnf['x5t#S256'] : undefined
  return typeof thumbprint === 'string' && thumbprint === certificateThumbprint(peer.cert)
}

/** base64url SHA-256 of a certificate's DER: the `x5t#S256` of RFC 8705 (and `mint --cnf-cert`). */
export function certificateThumbprint(cert: X509Certificate): string {
  return sha256(cert.raw).toString('base64url')
}

/**
 * A refusal of a token whose signature or time did not hold: the `sub` it claims (read without
 * trusting it, for the audit line's `claimed`) is never an identity.
 */
function refused(code: 'TOKEN_EXPIRED' | 'INVALID_CREDENTIALS', token: string, fp: string): AuthOutcome {
  const sub = claimedSubject(token)
  const message = code === 'INVALID_CREDENTIALS' ? { message: 'Invalid token' } : {}
  return { kind: 'deny', code, ...message, fp, ...(sub !== undefined ? { claimed: sub } : {}) }
}

/** The unverified payload's `sub`, when it is a plausible subject; undefined otherwise. */
function claimedSubject(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.slice(token.indexOf('.') + 1, token.lastIndexOf('.')), 'base64url').toString('utf8')) as { sub?: unknown } | null
    const sub = payload?.sub
    return typeof sub === 'string' && JWT_SUBJECT.test(sub) ? sub : undefined
  } catch {
    return undefined
  }
}

function isTimeFault(err: unknown): boolean {
  if (err instanceof errors.JWTExpired) return true
  return err instanceof errors.JWTClaimValidationFailed && err.claim === 'nbf' && err.reason === 'check_failed'
}

/** gateway.yaml `type: jwt` → authenticator; the secret is resolved or the JWKS read and imported here, once. */
export const jwtScheme: SchemeType<typeof schema> = {
  type: 'jwt',
  schema,
  credential: BEARER_CREDENTIAL,
  compile: compileJwtScheme,
}

function compileJwtScheme(name: string, spec: JwtSchemeFile, ctx: CompileContext, path: ConfigPath, facts: CompileFacts): Authenticator | undefined {
  // DESIGN §4.9: a bound token needs a verified client certificate, which needs a client CA.
  if (spec.bindCertificate === true && !facts.clientCa) bindNeedsClientCa(ctx, path)
  if ((spec.secret === undefined) === (spec.jwks === undefined)) {
    ctx.error(path, 'a jwt scheme needs exactly one of `secret` (HS256) or `jwks` (EdDSA / ES256 public keys)')
    return undefined
  }
  let keys: JwtOptions['keys']
  if (spec.secret !== undefined) {
    const secret = ctx.secret(path.concat('secret'), spec.secret)
    if (secret === undefined) return undefined
    keys = [{ key: createSecretKey(Buffer.from(secret, 'utf8')), algorithms: ['HS256'] }]
  } else if (isRemoteJwks(spec.jwks!)) {
    const problem = jwksUrlProblem(spec.jwks!)
    if (problem) {
      ctx.error(path.concat('jwks'), problem)
      return undefined
    }
    let ca: Buffer | undefined
    if (spec.jwksCa !== undefined) {
      ca = ctx.readFile(path.concat('jwksCa'), spec.jwksCa)
      if (ca === undefined) return undefined
      if (!/-----BEGIN CERTIFICATE-----/.test(ca.toString('latin1'))) {
        ctx.error(path.concat('jwksCa'), `${spec.jwksCa} is not a PEM certificate`)
        return undefined
      }
    }
    keys = sharedRemoteKeySet(new URL(spec.jwks!), durationMs(spec.jwksCacheTtl), ca)
  } else {
    if (spec.jwksCa !== undefined) {
      ctx.error(path.concat('jwksCa'), 'applies only when jwks is an https:// URL')
      return undefined
    }
    const text = ctx.readFile(path.concat('jwks'), spec.jwks!)
    if (text === undefined) return undefined
    const parsed = jwksVerificationKeys(text.toString('utf8'))
    if (!parsed.ok) {
      ctx.error(path.concat('jwks'), `${spec.jwks} ${parsed.message}`)
      return undefined
    }
    keys = parsed.keys
  }
  return createJwtAuthenticator({
    name,
    keys,
    ...(spec.issuer !== undefined ? { issuer: spec.issuer } : {}),
    ...(spec.audience !== undefined ? { audience: spec.audience } : {}),
    maxTtlMs: durationMs(spec.maxTtl),
    rolesClaim: spec.rolesClaim,
    roles: spec.roles ?? [],
    revoked: spec.revoked ?? [],
    bindCertificate: spec.bindCertificate,
  })
}

/** DESIGN §4.9, for jwt and ucan schemes alike: `bindCertificate: true` without a client CA is an error. */
export function bindNeedsClientCa(ctx: CompileContext, path: ConfigPath): void {
  ctx.error(path.concat('bindCertificate'), 'bindCertificate needs server.tls.clientCa (tokens are bound to verified client certificates)')
}
