// DESIGN §4.7: the join endpoint. A worker that knows only its id and the join PSK gets the key
// `derive` gives its id, wrapped for its X25519 public key; the gateway stores nothing per worker.
// The PSK request is verified as rfc9421 (keyid `join`). Never logs the PSK, a key or a signature.
import { Type } from '@sinclair/typebox'
import { defaulted, Secret, Strict, type Filled } from '../config/schema-parts.js'
import { durationMs, type CompileContext } from '../config/types.js'
import { isCanonicalPath } from '../policy/canonical-path.js'
import { deriveKey } from './derive.js'
import { importRawX25519 } from './join-wrap.js'
import { createRfc9421Authenticator, KEY_ID_PATTERN, SIGNATURE_CREDENTIAL, type Rfc9421SchemeFile } from './rfc9421.js'
import type { AuthOutcome, AuthRequest, Authenticator } from './types.js'

/** The rfc9421 keyid a join request is signed with; its key is the join PSK. */
export const JOIN_KEY_ID = 'join'
/**
 * A keyid a worker may join as (DESIGN §4.7): printable ASCII without spaces or `:`, bounded. Its
 * identities are `join:<keyid>` here and `<join.scheme>:<keyid>` afterwards.
 */
export const JOIN_KEYID_PATTERN = /^[\x21-\x39\x3b-\x7e]{1,256}$/
export const BAD_PUBLIC_KEY = 'publicKey must be a raw X25519 public key (32 bytes, base64url)'

export interface JoinEndpoint {
  path: string
  /** The rfc9421 scheme whose `derive` makes the keys; its name is the join's x-auth-method / authMethod. */
  scheme: string
  /** The worker's key for `keyid` (DESIGN §4.4 derive); the master stays inside this closure. */
  keyFor(keyid: string): string
}

const schema = Type.Object(
  { path: Type.Optional(defaulted(Type.String({ pattern: '^/', default: '/_portcullis/join' }))), psk: Secret, scheme: Type.String({ minLength: 1 }) },
  Strict,
)
type JoinFile = Filled<typeof schema>

/**
 * The `join:` section: its schema, the credential its requests carry (an rfc9421 signature, keyid `join`,
 * with the PSK as key) and its compile function. The endpoint is a route of its own (config/compile.ts).
 */
export const joinEndpoint = {
  key: 'join',
  schema,
  credential: SIGNATURE_CREDENTIAL,
  compile: compileJoin,
} as const

/**
 * gateway.yaml `join:` → the endpoint and the authenticator in front of it, or undefined (with errors
 * recorded) when it cannot work. `compiled`: the schemes that compiled.
 */
function compileJoin(
  spec: JoinFile,
  schemes: Readonly<Record<string, { type: string }>>,
  ctx: CompileContext,
  compiled: ReadonlyMap<string, Authenticator>,
): { endpoint: JoinEndpoint; authenticator: Authenticator } | undefined {
  const path = spec.path
  let ok = true
  if (!isCanonicalPath(path) || path.includes('?')) {
    ctx.error(['join', 'path'], 'must be a canonical path such as /_portcullis/join')
    ok = false
  }
  const scheme = schemes[spec.scheme]
  if (!scheme) {
    ctx.error(['join', 'scheme'], `unknown scheme "${spec.scheme}"; join needs an rfc9421 scheme with derive`)
    ok = false
  } else if (scheme.type !== 'rfc9421' || (scheme as Rfc9421SchemeFile).derive === undefined) {
    ctx.error(['join', 'scheme'], `scheme "${spec.scheme}" must be type rfc9421 with a derive master`)
    ok = false
  }
  const psk = ctx.secret(['join', 'psk'], spec.psk)
  if (!ok || psk === undefined || !scheme || !compiled.has(spec.scheme)) return undefined
  const signed = scheme as Rfc9421SchemeFile
  // The scheme compiled, so its master resolves (it reported any problem itself).
  const master = ctx.secret(['schemes', spec.scheme, 'derive'], signed.derive!)
  if (master === undefined) return undefined
  const verifier = createRfc9421Authenticator({ name: spec.scheme, windowMs: durationMs(signed.window), roles: [], keys: new Map([[JOIN_KEY_ID, psk]]) })
  const endpoint: JoinEndpoint = { path, scheme: spec.scheme, keyFor: (keyid) => deriveKey(master, keyid) }
  return { endpoint, authenticator: joinAuthenticator(spec.scheme, verifier, new Set(signed.revoked ?? [])) }
}

/** The PSK signature, then the body: the identity is `join:<keyid>` under the join scheme's name. */
function joinAuthenticator(scheme: string, v: Authenticator, revoked: ReadonlySet<string>): Authenticator {
  return {
    name: scheme,
    kind: v.kind,
    credentialHeaders: v.credentialHeaders,
    challenge: v.challenge,
    present: (req) => v.present(req),
    needsBody: () => true,
    async authenticate(ar: AuthRequest): Promise<AuthOutcome> {
      const outcome = await v.authenticate(ar)
      if (outcome.kind !== 'identity') {
        if (outcome.kind === 'absent') return outcome
        const claimed = claimedKeyId(ar.body)
        return claimed !== undefined ? { ...outcome, claimed } : outcome
      }
      const parsed = parseJoinBody(ar.body ?? Buffer.alloc(0))
      const fp = outcome.identity.fp
      if (typeof parsed === 'string') return { kind: 'deny', code: 'BAD_REQUEST', message: parsed, fp }
      if (parsed.publicKey !== undefined && !importRawX25519(parsed.publicKey)) return { kind: 'deny', code: 'BAD_REQUEST', message: BAD_PUBLIC_KEY, fp }
      if (parsed.publicKey === undefined && !ar.tls) return { kind: 'deny', code: 'BAD_REQUEST', message: 'publicKey is required unless the gateway listens with TLS', fp }
      if (revoked.has(parsed.keyid)) return { kind: 'deny', code: 'KEY_REVOKED', fp, claimed: parsed.keyid }
      const replay = outcome.identity.replay
      return {
        kind: 'identity',
        identity: { name: 'join:' + parsed.keyid, roles: [], method: scheme, fp, ...(replay ? { replay: { key: 'join:' + replay.key, ttlMs: replay.ttlMs } } : {}) },
      }
    },
  }
}

type JoinBody = { keyid: string; publicKey?: string }

/** The join body, or a reason it is malformed. Unknown members are ignored (forward compatibility). */
export function parseJoinBody(body: Buffer): JoinBody | string {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    return 'Join body must be JSON'
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return 'Join body must be a JSON object'
  const { keyid, publicKey } = doc as Record<string, unknown>
  if (typeof keyid !== 'string' || !JOIN_KEYID_PATTERN.test(keyid)) return 'keyid must be 1 to 256 printable ASCII characters without spaces or ":"'
  if (publicKey !== undefined && typeof publicKey !== 'string') return 'publicKey must be a base64url string'
  return publicKey === undefined ? { keyid } : { keyid, publicKey }
}

/** Best effort, for the audit line's `claimed` on a refused request: the keyid the (unverified) body names. */
function claimedKeyId(body: Buffer | undefined): string | undefined {
  if (!body) return undefined
  try {
    const keyid = (JSON.parse(body.toString('utf8')) as { keyid?: unknown } | null)?.keyid
    return typeof keyid === 'string' && KEY_ID_PATTERN.test(keyid) ? keyid : undefined
  } catch {
    return undefined
  }
}
