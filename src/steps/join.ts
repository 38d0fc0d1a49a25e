// DESIGN §4.7 as a route: the join endpoint takes the same steps as every request (framing, path,
// throttle, authenticate with the PSK, replay, rate limit), and its last step answers locally with
// the worker's wrapped key instead of forwarding. Never logs the PSK, a key or a signature.
import type { Gateway } from '../config/compile.js'
import { ERRORS } from '../errors.js'
import type { Exchange, JoinRoute } from '../exchange.js'
import { claimedKeyId, parseJoinBody, type JoinEndpoint } from '../auth/join.js'
import { importRawX25519, wrapWorkerKey } from '../auth/join-wrap.js'
import type { AuthOutcome, AuthRequest, Authenticator } from '../auth/types.js'

const BAD_KEY = 'publicKey must be a raw X25519 public key (32 bytes, base64url)'

/** The PSK signature, then the body: the identity is `join:<keyid>` under the join scheme's name. */
function joinAuthenticator(endpoint: JoinEndpoint): Authenticator {
  const v = endpoint.verifier
  return {
    name: endpoint.scheme,
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
      if (parsed.publicKey !== undefined && !importRawX25519(parsed.publicKey)) return { kind: 'deny', code: 'BAD_REQUEST', message: BAD_KEY, fp }
      if (parsed.publicKey === undefined && !ar.tls) return { kind: 'deny', code: 'BAD_REQUEST', message: 'publicKey is required unless the gateway listens with TLS', fp }
      if (endpoint.revoked.has(parsed.keyid)) return { kind: 'deny', code: 'KEY_REVOKED', fp, claimed: parsed.keyid }
      const replay = outcome.identity.replay
      return {
        kind: 'identity',
        identity: { name: 'join:' + parsed.keyid, roles: [], method: endpoint.scheme, fp, ...(replay ? { replay: { key: 'join:' + replay.key, ttlMs: replay.ttlMs } } : {}) },
      }
    },
  }
}

const routes = new WeakMap<Gateway, JoinRoute | null>()

/** The join endpoint of this config as a route (built once per config), or undefined without `join:`. */
export function joinRoute(gw: Gateway): JoinRoute | undefined {
  let r = routes.get(gw)
  if (r === undefined) {
    const endpoint = gw.join
    const auth = endpoint ? joinAuthenticator(endpoint) : undefined
    r = endpoint && auth
      ? { id: endpoint.path, upstream: null, public: false, auth: [auth], challenge: auth.challenge, missingMessage: ERRORS.MISSING_CREDENTIALS.message, roles: null, rateLimit: gw.defaults.rateLimit, loopbackAllow: false, websocket: false, endpoint }
      : null
    routes.set(gw, r)
  }
  return r ?? undefined
}

/** The last step of the join route: the worker's key, wrapped for its public key (or in clear over TLS). */
export function answerJoin(x: Exchange, route: JoinRoute): { status: number; body: string } | { code: 'BAD_REQUEST'; message: string } {
  const parsed = parseJoinBody(x.body ?? Buffer.alloc(0))
  if (typeof parsed === 'string') return { code: 'BAD_REQUEST', message: parsed }
  const key = route.endpoint.keyFor(parsed.keyid)
  if (parsed.publicKey === undefined) return { status: 200, body: JSON.stringify({ keyid: parsed.keyid, key }) }
  const clientKey = importRawX25519(parsed.publicKey)
  if (!clientKey) return { code: 'BAD_REQUEST', message: BAD_KEY }
  try {
    return { status: 200, body: JSON.stringify(wrapWorkerKey(parsed.keyid, key, clientKey)) }
  } catch {
    return { code: 'BAD_REQUEST', message: BAD_KEY }
  }
}
