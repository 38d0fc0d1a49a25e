// DESIGN §4.8: `type: ucan` — a UCAN 1.0 invocation (with its proofs, in a container) as
// `Authorization: Bearer`, bound to this request's method, path and body. Authentication here;
// the route's `command` is checked by the identity's `authorize` hook (403). Never logs or returns a token.
import { LRUCache } from 'lru-cache'
import { Type } from '@sinclair/typebox'
import { defaulted, Duration, Roles, Strict, type Filled } from '../config/schema-parts.js'
import { durationMs, type CompileContext, type ConfigPath } from '../config/types.js'
import type { ErrorCode } from '../errors.js'
import { BEARER_CREDENTIAL, bearerToken } from './bearer.js'
import { computeContentDigest } from './content-digest.js'
import { tokenFingerprint } from './credential.js'
import { bindNeedsClientCa } from './jwt.js'
import { certificateSans } from './mtls.js'
import { isTlsSocket, type AuthOutcome, type AuthRequest, type Authenticator, type CompileFacts, type SchemeType } from './types.js'
import { ContainerError, decodeContainerText } from '../ucan/container.js'
import { parseDidKey } from '../ucan/did-key.js'
import { parseTokenCid, type UcanErrorName } from '../ucan/token.js'
import { UCAN_CLOCK_TOLERANCE_S, verifyContainerTokens } from '../ucan/verify.js'

const schema = Type.Object(
  {
    type: Type.Literal('ucan'),
    subjects: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    audience: Type.Optional(Type.String({ minLength: 1 })),
    window: Type.Optional(Duration('5m')),
    roles: Type.Optional(Roles),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    bindCertificate: Type.Optional(defaulted(Type.Boolean({ default: false }))),
  },
  Strict,
)
type UcanSchemeFile = Filled<typeof schema>

export interface UcanSchemeOptions {
  name: string
  subjects: ReadonlySet<string>
  audience?: string
  windowMs: number
  roles: readonly string[]
  /** Base32 CIDs. */
  revoked: ReadonlySet<string>
  bindCertificate: boolean
}

export const INVALID_UCAN = 'Invalid UCAN'
export const NOT_BOUND = 'Token not bound to this certificate'
/** A base64 container of 64 KiB, plus its header byte and slack. */
const MAX_CREDENTIAL = 88_000

/** The fixture / verifier error names → the code the gateway answers with. */
export function ucanErrorCode(name: UcanErrorName): ErrorCode {
  switch (name) {
    case 'Expired':
    case 'TooEarly':
    case 'TooLong':
      return 'TOKEN_EXPIRED'
    case 'Revoked':
      return 'KEY_REVOKED'
    case 'CommandMismatch':
    case 'MatchError':
      return 'FORBIDDEN'
    default:
      return 'INVALID_CREDENTIALS'
  }
}

export function createUcanAuthenticator(o: UcanSchemeOptions): Authenticator {
  const windowS = Math.floor(o.windowMs / 1000)
  // A chain is reused by every request of a worker: its delegations' signatures are checked once per CID.
  const lru = new LRUCache<string, true>({ max: 10_000 })
  const verifiedDelegations = { has: (cid: string) => lru.has(cid), add: (cid: string) => void lru.set(cid, true) }

  function authenticate(req: AuthRequest): AuthOutcome {
    const token = bearerToken(req.raw)
    if (token === undefined) return { kind: 'absent' }
    const fp = tokenFingerprint(token)
    const invalid: AuthOutcome = { kind: 'deny', code: 'INVALID_CREDENTIALS', message: INVALID_UCAN, fp }
    if (token.length > MAX_CREDENTIAL) return invalid
    let tokens: Uint8Array[]
    try {
      tokens = decodeContainerText(token)
    } catch (err) {
      if (err instanceof ContainerError) return invalid
      throw err
    }
    const nowS = Math.floor(req.now / 1000)
    const v = verifyContainerTokens(tokens, {
      now: nowS,
      subjects: o.subjects,
      ...(o.audience !== undefined ? { audience: o.audience } : {}),
      maxInvocationTtl: windowS,
      revoked: o.revoked,
      verifiedDelegations,
    })
    if (!v.ok) {
      const code = ucanErrorCode(v.error)
      return code === 'INVALID_CREDENTIALS' ? invalid : { kind: 'deny', code, fp }
    }
    const inv = v.value.invocation.payload
    if (!bindsRequest(inv.args, req)) return invalid
    if (o.bindCertificate && !certificateNames(req, inv.iss)) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: NOT_BOUND, fp }
    // exp is set (maxInvocationTtl): the CID stays in the replay cache until the invocation is dead.
    const deadMs = ((inv.exp as number) + UCAN_CLOCK_TOLERANCE_S) * 1000
    const verified = v.value
    return {
      kind: 'identity',
      identity: {
        name: `${o.name}:${inv.iss}`,
        roles: o.roles,
        method: o.name,
        fp,
        replay: { key: 'ucan:' + verified.invocation.cidText, ttlMs: Math.max(1000, deadMs - req.now) },
        expiresAt: (inv.exp as number) * 1000,
        authorize: (route) => route.command !== null && verified.allows(route.command).ok,
      },
    }
  }

  return {
    name: o.name,
    kind: BEARER_CREDENTIAL.kind,
    credentialHeaders: BEARER_CREDENTIAL.headers,
    challenge: 'Bearer realm="portcullis"',
    missingMessage: 'Missing token',
    present: (req) => bearerToken(req) !== undefined,
    needsBody: (raw) => {
      const length = raw.headers['content-length']
      return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) > 0)
    },
    authenticate,
  }
}

/** args.method and args.path exactly as sent; args.digest = the body's sha-256 Content-Digest when there is a body. */
function bindsRequest(args: Record<string, unknown>, req: AuthRequest): boolean {
  if (args.method !== req.method || args.path !== req.target) return false
  const body = req.body
  const digest = Object.hasOwn(args, 'digest') ? args.digest : undefined
  if (body === undefined || body.length === 0) return digest === undefined || digest === computeContentDigest(body ?? Buffer.alloc(0))
  return typeof digest === 'string' && digest === computeContentDigest(body)
}

/** DESIGN §4.9: the invocation issuer's DID is a `URI:` SAN of the verified client certificate. */
function certificateNames(req: AuthRequest, did: string): boolean {
  if (!isTlsSocket(req.raw) || req.raw.socket.authorized !== true) return false
  const cert = req.raw.socket.getPeerX509Certificate()
  return cert !== undefined && certificateSans(cert).includes(`URI:${did}`)
}

/** gateway.yaml `type: ucan` → authenticator: DIDs and CIDs parsed here, once. */
export const ucanScheme: SchemeType<typeof schema> = {
  type: 'ucan',
  schema,
  credential: BEARER_CREDENTIAL,
  routeCommand: true,
  compile: compileUcanScheme,
}

function compileUcanScheme(name: string, spec: UcanSchemeFile, ctx: CompileContext, path: ConfigPath, facts: CompileFacts): Authenticator | undefined {
  // DESIGN §4.9: a bound token needs a verified client certificate, which needs a client CA.
  if (spec.bindCertificate === true && !facts.clientCa) bindNeedsClientCa(ctx, path)
  let ok = true
  const subjects = new Set<string>()
  spec.subjects.forEach((did, i) => {
    if (!parseDidKey(did)) {
      ctx.error(path.concat('subjects', i), 'must be a did:key of an Ed25519 or P-256 key')
      ok = false
    } else subjects.add(did)
  })
  if (spec.audience !== undefined && !/^did:[a-z0-9]+:[^\s#]+$/.test(spec.audience)) {
    ctx.error(path.concat('audience'), 'must be a DID (this gateway\'s, e.g. did:key:z6Mk…)')
    ok = false
  }
  const revoked = new Set<string>()
  ;(spec.revoked ?? []).forEach((text, i) => {
    const cid = parseTokenCid(text)
    if (!cid) {
      ctx.error(path.concat('revoked', i), 'must be a token CID (CIDv1 dag-cbor sha2-256, base32 b… or base58btc z…)')
      ok = false
    } else revoked.add(cid.toString())
  })
  if (!ok) return undefined
  return createUcanAuthenticator({
    name,
    subjects,
    ...(spec.audience !== undefined ? { audience: spec.audience } : {}),
    windowMs: durationMs(spec.window),
    roles: spec.roles ?? [],
    revoked,
    bindCertificate: spec.bindCertificate,
  })
}
