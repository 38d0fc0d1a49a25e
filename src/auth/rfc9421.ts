// DESIGN §4.4: HTTP Message Signatures (RFC 9421) with hmac-sha256, keys by keyid or derived.
// Never logs; a denial names only the key id and its fingerprint, never a key, base or signature.
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import { Type } from '@sinclair/typebox'
import { Claims, Duration, Roles, Secret, Strict, type Filled } from '../config/schema-parts.js'
import { durationMs } from '../config/types.js'
import type { ErrorCode } from '../errors.js'
import { verifyContentDigest } from './content-digest.js'
import { digestsEqual, keyFingerprint, sha256 } from './credential.js'
import { deriveKey } from './derive.js'
import { hmacKey, hmacSha256With, type HmacKey } from './hmac.js'
import { schemeIdentity } from './identity-names.js'
import { buildSignatureBase, MAX_COVERED_COMPONENTS, parseSignatureFields, type SignatureEntry, type SignedMessage } from './signature-base.js'
import type { AuthOutcome, AuthRequest, Authenticator, Credential, SchemeType } from './types.js'

/** `Signature-Input` / `Signature` (RFC 9421), for rfc9421 schemes and the join endpoint's PSK requests. */
export const SIGNATURE_CREDENTIAL: Credential = {
  kind: 'signature',
  headers: ['signature-input', 'signature'],
  present: (req) => req.headers['signature-input'] !== undefined || req.headers['signature'] !== undefined,
}

const schema = Type.Object(
  {
    type: Type.Literal('rfc9421'),
    window: Type.Optional(Duration('60s')),
    keys: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Secret)),
    derive: Type.Optional(Secret),
    revoked: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    roles: Type.Optional(Roles),
    claims: Type.Optional(Claims),
  },
  Strict,
)
export type Rfc9421SchemeFile = Filled<typeof schema>

export interface Rfc9421Options {
  /** The scheme's name: x-auth-method, and what routes list in `auth`. */
  name: string
  windowMs: number
  roles: readonly string[]
  /** The scheme's `claims`: every signer's (DESIGN §4.9). */
  claims?: Readonly<Record<string, unknown>>
  /** keyid → key; a string key is used as its UTF-8 bytes. */
  keys: ReadonlyMap<string, string | Uint8Array>
  /** Master secret for keyids not in `keys` (DESIGN §4.4 `derive`). */
  deriveMaster?: string
  revoked?: Iterable<string>
  /** How many derived keys to keep; default 10 000. */
  derivedCacheSize?: number
}

/** Components every signature must cover; `content-digest` too when the request has a body. */
export const REQUIRED_COMPONENTS = ['@method', '@authority', '@path', '@query'] as const
/** Printable ASCII without spaces, bounded: key ids become identities and replay keys. */
export const KEY_ID_PATTERN = /^[\x21-\x7e]{1,256}$/
const NONCE_MAX = 256
const EMPTY = Buffer.alloc(0)
const ABSENT: AuthOutcome = { kind: 'absent' }

/** A verification key with its fingerprint, both computed once per keyid. */
interface SigningKey {
  key: HmacKey
  fp: string
}

export function createRfc9421Authenticator(options: Rfc9421Options): Authenticator {
  const { name, windowMs, roles } = options
  const keys = new Map<string, SigningKey>()
  for (const [keyid, key] of options.keys) keys.set(keyid, { key: hmacKey(key), fp: keyFingerprint(keyid) })
  const revoked = new Set(options.revoked ?? [])
  const master = options.deriveMaster
  const derived = new LRUCache<string, SigningKey>({ max: options.derivedCacheSize ?? 10_000 })
  const replayTtlMs = windowMs * 2

  const isKnown = (keyid: string) => keys.has(keyid) || revoked.has(keyid) || master !== undefined
  const keyFor = (keyid: string): SigningKey => {
    const known = keys.get(keyid) ?? derived.get(keyid)
    if (known !== undefined) return known
    const made = { key: hmacKey(deriveKey(master as string, keyid)), fp: keyFingerprint(keyid) }
    derived.set(keyid, made)
    return made
  }

  function authenticate(req: AuthRequest): AuthOutcome {
    const headers = req.raw.headers
    const input = headers['signature-input']
    const signature = headers['signature']
    if (input === undefined && signature === undefined) return ABSENT
    if (typeof input !== 'string' || typeof signature !== 'string') return deny('INVALID_SIGNATURE')
    const entries = parseSignatureFields(input, signature)
    if (entries === undefined) return deny('INVALID_SIGNATURE')
    const chosen = entries.find((e) => isKeyId(e.params.get('keyid')) && isKnown(e.params.get('keyid') as string))
    if (chosen === undefined) {
      const claimed = entries.map((e) => e.params.get('keyid')).find(isKeyId)
      return deny('INVALID_SIGNATURE', claimed)
    }
    const keyid = chosen.params.get('keyid') as string
    // DESIGN §4.4: refused before any component is looked at, so the work per request is bounded.
    if (chosen.covered[0].length > MAX_COVERED_COMPONENTS) return deny('INVALID_SIGNATURE', keyid)
    if (revoked.has(keyid)) return deny('KEY_REVOKED', keyid)

    const fault = checkParams(chosen, req)
    if (fault !== undefined) return deny(fault, keyid)
    if (req.body === undefined && needsBody(req.raw)) return deny('INVALID_SIGNATURE', keyid)
    const body = req.body ?? EMPTY
    if (body.length > 0 && !covers(chosen, 'content-digest')) return deny('INVALID_SIGNATURE', keyid)

    const message = requestMessage(req)
    // A signature made for another gateway (server.authorities) is refused even where no replay cache is shared.
    if (req.authorities !== undefined && !req.authorities.allows(message.authority, message.scheme)) return deny('INVALID_SIGNATURE', keyid)
    const base = buildSignatureBase(message, chosen.covered)
    if (!base.ok || chosen.signature === undefined) return deny('INVALID_SIGNATURE', keyid)
    const signing = keyFor(keyid)
    if (!digestsEqual(hmacSha256With(signing.key, base.base, 'latin1'), chosen.signature)) return deny('INVALID_SIGNATURE', keyid)

    // Hashing the body is the costly step: only for a request whose signature already verified.
    // Parsed once per request: reuse the Dictionary the base already parsed when it was covered with ;sf or ;key.
    const digest = base.dictionaries?.get('content-digest') ?? fieldValues(req.raw, 'content-digest')?.join(', ')
    if (digest !== undefined && verifyContentDigest(digest, body) !== 'ok') return deny('DIGEST_MISMATCH', keyid)

    const nonce = chosen.params.get('nonce') as string
    const expires = chosen.params.get('expires')
    return {
      kind: 'identity',
      identity: {
        name: schemeIdentity(name, keyid),
        roles,
        ...(options.claims ? { claims: options.claims } : {}),
        method: name,
        fp: signing.fp,
        replay: { key: replayKey(keyid, nonce), ttlMs: replayTtlMs },
        ...(typeof expires === 'number' ? { expiresAt: expires * 1000 } : {}),
      },
    }
  }

  /** Parameter faults: INVALID_SIGNATURE for a malformed or missing one, TIMESTAMP_SKEW for time. */
  function checkParams(entry: SignatureEntry, req: AuthRequest): ErrorCode | undefined {
    const { params } = entry
    const alg = params.get('alg')
    if (alg !== undefined && alg !== 'hmac-sha256') return 'INVALID_SIGNATURE'
    const nonce = params.get('nonce')
    if (typeof nonce !== 'string' || nonce.length === 0 || nonce.length > NONCE_MAX) return 'INVALID_SIGNATURE'
    const created = params.get('created')
    const expires = params.get('expires')
    if (!Number.isSafeInteger(created) || (expires !== undefined && !Number.isSafeInteger(expires))) return 'INVALID_SIGNATURE'
    if (!REQUIRED_COMPONENTS.every((c) => covers(entry, c))) return 'INVALID_SIGNATURE'
    if (Math.abs(req.now - (created as number) * 1000) > windowMs) return 'TIMESTAMP_SKEW'
    if (typeof expires === 'number' && req.now >= expires * 1000) return 'TIMESTAMP_SKEW'
    return undefined
  }

  return {
    name,
    kind: SIGNATURE_CREDENTIAL.kind,
    credentialHeaders: SIGNATURE_CREDENTIAL.headers,
    challenge: 'Signature realm="portcullis"',
    present: (req) => SIGNATURE_CREDENTIAL.present(req, SIGNATURE_CREDENTIAL.headers),
    needsBody,
    authenticate,
  }
}

/** gateway.yaml `type: rfc9421` → authenticator; secrets resolved here, once. */
export const rfc9421Scheme: SchemeType<typeof schema> = {
  type: 'rfc9421',
  schema,
  credential: SIGNATURE_CREDENTIAL,
  compile(name, spec, ctx, path) {
    let ok = true
    const keys = new Map<string, string>()
    for (const [keyid, ref] of Object.entries(spec.keys ?? {})) {
      if (!KEY_ID_PATTERN.test(keyid)) {
        ctx.error(path.concat('keys', keyid), 'a key id is 1 to 256 printable ASCII characters without spaces')
        ok = false
        continue
      }
      const secret = ctx.secret(path.concat('keys', keyid), ref)
      if (secret === undefined) ok = false
      else keys.set(keyid, secret)
    }
    let deriveMaster: string | undefined
    if (spec.derive !== undefined) {
      deriveMaster = ctx.secret(path.concat('derive'), spec.derive)
      if (deriveMaster === undefined) ok = false
    }
    if (spec.keys === undefined && spec.derive === undefined) {
      ctx.error(path, 'an rfc9421 scheme needs `keys`, `derive`, or both')
      ok = false
    }
    if (!ok) return undefined
    return createRfc9421Authenticator({
      name,
      windowMs: durationMs(spec.window),
      roles: spec.roles ?? [],
      ...(spec.claims ? { claims: spec.claims } : {}),
      keys,
      deriveMaster,
      revoked: spec.revoked ?? [],
    })
  },
}

/**
 * The request as RFC 9421 sees it. @authority is the Host header lower-cased, exactly as received;
 * none, or several (which Node would silently reduce to the first), give no authority at all.
 */
export function requestMessage(req: AuthRequest): SignedMessage {
  const hosts = fieldValues(req.raw, 'host') ?? fieldValues(req.raw, ':authority')
  return {
    method: req.method,
    scheme: req.tls ? 'https' : 'http',
    authority: hosts?.length === 1 ? (hosts[0] as string).toLowerCase() : '',
    path: req.path,
    query: req.query,
    target: req.target,
    field: (name) => fieldValues(req.raw, name),
  }
}

/** Every instance of a header, in order, from the raw header list (Node drops repeats of some). */
export function fieldValues(raw: IncomingMessage, name: string): string[] | undefined {
  const list = raw.rawHeaders
  if (!Array.isArray(list)) {
    const value = raw.headers[name]
    return value === undefined ? undefined : Array.isArray(value) ? value : [value]
  }
  let found: string[] | undefined
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = list[i] as string
    if (key.length === name.length && key.toLowerCase() === name) (found ??= []).push(list[i + 1] as string)
  }
  return found
}

function needsBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length']
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) > 0)
}

function covers(entry: SignatureEntry, component: string): boolean {
  return entry.covered[0].some(([name]) => name === component)
}

function isKeyId(value: unknown): value is string {
  return typeof value === 'string' && KEY_ID_PATTERN.test(value)
}

/**
 * `sig:<keyid>:<nonce>`. A long key, or a keyid holding `:` (which would make the split ambiguous),
 * becomes `sig:#` + a hash: that form has no `:` after the prefix, so the two never collide.
 */
export function replayKey(keyid: string, nonce: string): string {
  const key = `sig:${keyid}:${nonce}`
  return key.length <= 300 && !keyid.includes(':') ? key : 'sig:#' + sha256(JSON.stringify([keyid, nonce])).toString('hex')
}

function deny(code: ErrorCode, keyid?: string): AuthOutcome {
  return keyid === undefined ? { kind: 'deny', code } : { kind: 'deny', code, fp: keyFingerprint(keyid), claimed: keyid }
}
