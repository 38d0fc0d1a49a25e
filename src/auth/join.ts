// DESIGN §4.7: the join endpoint. A worker that knows only its id and the join PSK gets the key
// `derive` gives its id, wrapped for its X25519 public key; the gateway stores nothing per worker.
// The PSK request is verified as rfc9421 (keyid `join`). Never logs the PSK, a key or a signature.
import type { GatewayConfigFile } from '../config/schema.js'
import { durationMs, type CompileContext } from '../config/types.js'
import { isCanonicalPath } from '../policy/canonical-path.js'
import { deriveKey } from './derive.js'
import { createRfc9421Authenticator, KEY_ID_PATTERN } from './rfc9421.js'
import type { Authenticator } from './types.js'

/** The rfc9421 keyid a join request is signed with; its key is the join PSK. */
export const JOIN_KEY_ID = 'join'
/**
 * A keyid a worker may join as (DESIGN §4.7): printable ASCII without spaces or `:`, bounded. Its
 * identities are `join:<keyid>` here and `<join.scheme>:<keyid>` afterwards.
 */
export const JOIN_KEYID_PATTERN = /^[\x21-\x39\x3b-\x7e]{1,256}$/

export interface JoinEndpoint {
  path: string
  /** The rfc9421 scheme whose `derive` makes the keys; its name is the join's x-auth-method / authMethod. */
  scheme: string
  /** Verifies the PSK signature (keyid `join`), with the scheme's window. */
  verifier: Authenticator
  revoked: ReadonlySet<string>
  /** The worker's key for `keyid` (DESIGN §4.4 derive); the master stays inside this closure. */
  keyFor(keyid: string): string
}

/** gateway.yaml `join:` → the endpoint, or undefined (with errors recorded) when it cannot work. */
export function compileJoin(raw: GatewayConfigFile, ctx: CompileContext, authenticators: ReadonlyMap<string, Authenticator>): JoinEndpoint | undefined {
  const spec = raw.join
  if (!spec) return undefined
  const path = spec.path ?? '/_portcullis/join'
  let ok = true
  if (!isCanonicalPath(path) || path.includes('?')) {
    ctx.error(['join', 'path'], 'must be a canonical path such as /_portcullis/join')
    ok = false
  }
  const scheme = raw.schemes?.[spec.scheme] as { type: string; derive?: string; window?: string | number; revoked?: string[] } | undefined
  if (!scheme) {
    ctx.error(['join', 'scheme'], `unknown scheme "${spec.scheme}"; join needs an rfc9421 scheme with derive`)
    ok = false
  } else if (scheme.type !== 'rfc9421' || scheme.derive === undefined) {
    ctx.error(['join', 'scheme'], `scheme "${spec.scheme}" must be type rfc9421 with a derive master`)
    ok = false
  }
  const psk = ctx.secret(['join', 'psk'], spec.psk)
  if (!ok || psk === undefined || !scheme || !authenticators.has(spec.scheme)) return undefined
  // The scheme compiled, so its master resolves (it reported any problem itself).
  const master = ctx.secret(['schemes', spec.scheme, 'derive'], scheme.derive!)
  if (master === undefined) return undefined
  const windowMs = durationMs(scheme.window ?? '60s')
  return {
    path,
    scheme: spec.scheme,
    verifier: createRfc9421Authenticator({ name: spec.scheme, windowMs, roles: [], keys: new Map([[JOIN_KEY_ID, psk]]) }),
    revoked: new Set(scheme.revoked ?? []),
    keyFor: (keyid) => deriveKey(master, keyid),
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
export function claimedKeyId(body: Buffer | undefined): string | undefined {
  if (!body) return undefined
  try {
    const keyid = (JSON.parse(body.toString('utf8')) as { keyid?: unknown } | null)?.keyid
    return typeof keyid === 'string' && KEY_ID_PATTERN.test(keyid) ? keyid : undefined
  } catch {
    return undefined
  }
}
