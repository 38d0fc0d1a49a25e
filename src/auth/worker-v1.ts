// DESIGN §4.3: the seed-compatible worker signature (x-worker-id / -timestamp / -signature).
// Refuses with the contract's exact messages and never throws on input; never logs a secret or signature.
import { createHmac, type KeyObject } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import { Claims, Duration, Roles, Secret, Strict } from '../config/schema-parts.js'
import { durationMs } from '../config/types.js'
import type { ErrorCode } from '../errors.js'
import { digestsEqual, keyFingerprint, sha256 } from './credential.js'
import { hmacKey, hmacSha256With } from './hmac.js'
import { schemeIdentity } from './identity-names.js'
import type { AuthOutcome, AuthRequest, Authenticator, Credential, SchemeType } from './types.js'

export const WORKER_V1_HEADERS = ['x-worker-id', 'x-worker-timestamp', 'x-worker-signature'] as const

/** Any of the three headers, even empty, is a worker-v1 credential: a missing one is then refused by name (`Missing timestamp`). */
const WORKER_V1_CREDENTIAL: Credential = {
  kind: 'worker-v1',
  headers: WORKER_V1_HEADERS,
  present: (req) => WORKER_V1_HEADERS.some((h) => req.headers[h] !== undefined),
}

const schema = Type.Object(
  { type: Type.Literal('worker-v1'), secret: Secret, window: Type.Optional(Duration('5m')), roles: Type.Optional(Roles), claims: Type.Optional(Claims) },
  Strict,
)

export const WORKER_V1_MESSAGES = {
  missingId: 'Missing worker ID',
  missingTimestamp: 'Missing timestamp',
  missingSignature: 'Missing signature',
  invalidSignature: 'Invalid signature',
  skew: 'Timestamp expired or too far in future',
} as const

export interface WorkerV1Options {
  name: string
  /** The shared secret; a string is used as its UTF-8 bytes (a hex secret is not decoded). */
  secret: string | Uint8Array
  windowMs: number
  roles: readonly string[]
  /** The scheme's `claims`: every signer's (DESIGN §4.9). */
  claims?: Readonly<Record<string, unknown>>
}

/** Unix milliseconds: 1 to 16 ASCII digits and nothing else (no sign, point, hex or space). */
const TIMESTAMP = /^[0-9]{1,16}$/
/** Lowercase hex of an HMAC-SHA256: exactly 64 characters. */
const SIGNATURE = /^[0-9a-f]{64}$/
const ABSENT: AuthOutcome = { kind: 'absent' }

/** What the worker signs: `<worker-id>:<timestamp>`. */
export function workerV1Payload(id: string, timestamp: string): string {
  return `${id}:${timestamp}`
}

/** The x-worker-signature value: lowercase hex HMAC-SHA256(secret, `<id>:<timestamp>`). */
export function workerV1Signature(secret: string | Uint8Array | KeyObject, id: string, timestamp: string): string {
  return createHmac('sha256', secret).update(workerV1Payload(id, timestamp), 'utf8').digest('hex')
}

export function createWorkerV1Authenticator(options: WorkerV1Options): Authenticator {
  const { name, windowMs, roles } = options
  const key = hmacKey(options.secret)
  // A (id, timestamp, signature) is acceptable from window before its timestamp to window after.
  const replayTtlMs = windowMs * 2

  function authenticate(req: AuthRequest): AuthOutcome {
    const headers = req.raw.headers
    const id = headerText(headers['x-worker-id'])
    const timestamp = headerText(headers['x-worker-timestamp'])
    const signature = headerText(headers['x-worker-signature'])
    if (id === undefined && timestamp === undefined && signature === undefined) return ABSENT
    if (id === undefined) return deny('MISSING_CREDENTIALS', WORKER_V1_MESSAGES.missingId)
    const who = { fp: keyFingerprint(id), claimed: id }
    if (timestamp === undefined) return deny('MISSING_CREDENTIALS', WORKER_V1_MESSAGES.missingTimestamp, who)
    if (signature === undefined) return deny('MISSING_CREDENTIALS', WORKER_V1_MESSAGES.missingSignature, who)
    if (!TIMESTAMP.test(timestamp) || Math.abs(req.now - Number(timestamp)) > windowMs) {
      return deny('TIMESTAMP_SKEW', WORKER_V1_MESSAGES.skew, who)
    }
    if (!SIGNATURE.test(signature)) return deny('INVALID_SIGNATURE', WORKER_V1_MESSAGES.invalidSignature, who)
    const expected = hmacSha256With(key, workerV1Payload(id, timestamp), 'utf8')
    if (!digestsEqual(expected, Buffer.from(signature, 'hex'))) {
      return deny('INVALID_SIGNATURE', WORKER_V1_MESSAGES.invalidSignature, who)
    }
    return {
      kind: 'identity',
      identity: {
        name: schemeIdentity(name, id),
        roles,
        ...(options.claims ? { claims: options.claims } : {}),
        method: name,
        fp: who.fp,
        replay: { key: replayKey(id, timestamp, signature), ttlMs: replayTtlMs },
      },
    }
  }

  return {
    name,
    kind: WORKER_V1_CREDENTIAL.kind,
    credentialHeaders: WORKER_V1_CREDENTIAL.headers,
    challenge: 'WorkerV1 realm="portcullis"',
    missingMessage: WORKER_V1_MESSAGES.missingId,
    present: (req) => WORKER_V1_CREDENTIAL.present(req, WORKER_V1_HEADERS),
    authenticate,
  }
}

/** gateway.yaml `type: worker-v1` → authenticator; the secret is resolved here, once. */
export const workerV1Scheme: SchemeType<typeof schema> = {
  type: 'worker-v1',
  schema,
  credential: WORKER_V1_CREDENTIAL,
  compile(name, spec, ctx, path) {
    const secret = ctx.secret(path.concat('secret'), spec.secret)
    if (secret === undefined) return undefined
    return createWorkerV1Authenticator({ name, secret, windowMs: durationMs(spec.window), roles: spec.roles ?? [], ...(spec.claims ? { claims: spec.claims } : {}) })
  },
}

/**
 * `w1:<id>:<timestamp>:<signature>` — unambiguous (timestamp is digits, signature 64 hex) — or,
 * for a long id, `w1:#` + a hash, a form with no `:` after the prefix.
 */
export function replayKey(id: string, timestamp: string, signature: string): string {
  const key = `w1:${id}:${timestamp}:${signature}`
  return key.length <= 300 ? key : 'w1:#' + sha256(key).toString('hex')
}

/** An empty header counts as missing, like an empty bearer token. */
function headerText(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) value = value.join(', ')
  return value === undefined || value === '' ? undefined : value
}

function deny(code: ErrorCode, message: string, who?: { fp: string; claimed: string }): AuthOutcome {
  return { kind: 'deny', code, message, ...who }
}
