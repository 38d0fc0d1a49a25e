// DESIGN §4.7: the join endpoint. A worker that knows only its id and the join PSK gets the key
// `derive` gives its id, wrapped for its X25519 public key; the gateway stores nothing per worker.
// The PSK request is verified as rfc9421 (keyid `join`). Never logs the PSK, a key or a signature.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Gateway } from '../config/compile.js'
import type { GatewayConfigFile } from '../config/schema.js'
import { durationMs, type CompileContext } from '../config/types.js'
import { ERRORS, errorBody, type ErrorCode } from '../errors.js'
import type { AuditEvent, AuditRecord, DecisionDetail } from '../observe/audit.js'
import { isCanonicalPath, splitCanonicalTarget } from '../policy/canonical-path.js'
import { checkAuthFailures, countAuthFailure, countRequest } from '../policy/limits.js'
import type { Exchange, Runtime } from '../pipeline.js'
import { BodyTooLargeError, readBody } from '../proxy/body.js'
import { StoreUnavailableError } from '../state/types.js'
import { isAmbiguous } from './authenticate.js'
import { deriveKey } from './derive.js'
import { JOIN_IDENTITY_PREFIX, schemeIdentity } from './identity-names.js'
import { importRawX25519, wrapWorkerKey } from './join-wrap.js'
import { createRfc9421Authenticator, KEY_ID_PATTERN } from './rfc9421.js'
import type { Authenticator, Identity } from './types.js'

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

/** Is this request for the join path (canonical, exactly the configured path, any query)? */
export function isJoinRequest(join: JoinEndpoint, req: IncomingMessage): boolean {
  const url = req.url ?? ''
  if (!url.startsWith(join.path)) return false
  const target = splitCanonicalTarget(url)
  return target.ok && target.path === join.path
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

interface JoinDecision {
  status: number
  code?: ErrorCode
  message?: string
  headers?: OutgoingHttpHeaders
  body?: string
  event: AuditEvent
  /** `join:<keyid>`, only once the PSK signature verified. */
  identity?: string
  /** The keyid a refused request's body names, as sent (never an identity). */
  claimed?: string
  fp?: string
  limitedBy?: DecisionDetail['limitedBy']
}

interface JoinContext {
  gw: Gateway
  join: JoinEndpoint
  state: Runtime['state']
  tls: boolean
  ip: string
  now: number
}

function refuse(code: ErrorCode, extra: Partial<JoinDecision> = {}): JoinDecision {
  const event: AuditEvent = code === 'RATE_LIMITED' ? 'ratelimit' : code === 'REPLAYED' ? 'replay' : 'deny'
  return { status: ERRORS[code].status, code, event, ...extra }
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

async function decideJoin(c: JoinContext, req: IncomingMessage): Promise<JoinDecision> {
  const { gw, join, state } = c
  if (req.method !== 'POST') return refuse('METHOD_NOT_ALLOWED', { headers: { allow: 'POST' } })
  const throttled = await checkAuthFailures(state, gw, c.ip)
  if (throttled) return refuse('RATE_LIMITED', { headers: throttled, limitedBy: 'authFailures' })
  const cl = req.headers['content-length']
  if (cl !== undefined && Number(cl) > gw.server.bodyLimit) return refuse('BODY_TOO_LARGE', { headers: { connection: 'close' } })
  const failed = async (d: JoinDecision) => {
    if (d.status === 401) await countAuthFailure(state, gw, c.ip)
    return d
  }
  if (isAmbiguous(gw, req)) return failed(refuse('AMBIGUOUS_CREDENTIALS'))
  if (!join.verifier.present(req)) return failed(refuse('MISSING_CREDENTIALS', { headers: { 'www-authenticate': join.verifier.challenge } }))

  const body = await readBody(req, gw.server.bodyLimit)
  const url = req.url ?? ''
  const q = url.indexOf('?')
  const outcome = await join.verifier.authenticate({
    raw: req,
    method: 'POST',
    path: join.path,
    query: q === -1 ? '' : url.slice(q),
    target: url,
    body,
    tls: c.tls,
    now: c.now,
    ...(gw.server.authorities !== undefined ? { authorities: gw.server.authorities } : {}),
  })
  if (outcome.kind === 'absent') return failed(refuse('MISSING_CREDENTIALS', { headers: { 'www-authenticate': join.verifier.challenge } }))
  if (outcome.kind === 'deny') {
    const claimed = claimedKeyId(body)
    return failed(refuse(outcome.code, { ...(outcome.message ? { message: outcome.message } : {}), ...(outcome.fp ? { fp: outcome.fp } : {}), ...(claimed !== undefined ? { claimed } : {}) }))
  }
  const fp = outcome.identity.fp

  const parsed = parseJoinBody(body)
  if (typeof parsed === 'string') return refuse('BAD_REQUEST', { message: parsed, fp })
  const { keyid } = parsed
  const who = { identity: schemeIdentity(JOIN_IDENTITY_PREFIX, keyid), fp }
  const clientKey = parsed.publicKey === undefined ? undefined : importRawX25519(parsed.publicKey)
  if (parsed.publicKey !== undefined && !clientKey) return refuse('BAD_REQUEST', { message: 'publicKey must be a raw X25519 public key (32 bytes, base64url)', ...who })
  if (!clientKey && !c.tls) return refuse('BAD_REQUEST', { message: 'publicKey is required unless the gateway listens with TLS', ...who })
  if (join.revoked.has(keyid)) return failed(refuse('KEY_REVOKED', who))

  const replay = outcome.identity.replay
  if (replay && !(await state.replay.remember('join:' + replay.key, replay.ttlMs))) return refuse('REPLAYED', who)
  const identity: Identity = { name: who.identity, roles: [], method: join.scheme, fp }
  const limit = await countRequest(state, { id: join.path, rateLimit: gw.defaults.rateLimit }, identity, c.ip)
  if (limit && !limit.ok) return refuse('RATE_LIMITED', { headers: limit.headers, limitedBy: gw.defaults.rateLimit!.by, ...who })

  const workerKey = join.keyFor(keyid)
  let answer: object
  if (clientKey) {
    try {
      answer = wrapWorkerKey(keyid, workerKey, clientKey)
    } catch {
      return refuse('BAD_REQUEST', { message: 'publicKey must be a raw X25519 public key (32 bytes, base64url)', ...who })
    }
  } else answer = { keyid, key: workerKey }
  return { status: 200, body: JSON.stringify(answer), event: 'allow', ...(limit ? { headers: limit.headers } : {}), ...who }
}


/** Answer one request on the join path and write its audit line. Never forwarded. */
export async function serveJoin(rt: Pick<Runtime, 'state' | 'listeners' | 'tls'>, x: Exchange, req: IncomingMessage, res: ServerResponse, join: JoinEndpoint): Promise<void> {
  x.path = join.path
  let d: JoinDecision
  try {
    d = await decideJoin({ gw: x.gw, join, state: rt.state, tls: rt.tls, ip: x.ip, now: Date.now() }, req)
  } catch (err) {
    if (err instanceof BodyTooLargeError) d = refuse('BODY_TOO_LARGE', { headers: { connection: 'close' } })
    else if (err instanceof StoreUnavailableError) d = refuse('STATE_UNAVAILABLE')
    else throw err
  }
  if (!res.headersSent) {
    const body = d.code ? errorBody(d.code, x.reqId, d.message) : d.body!
    res.writeHead(d.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-request-id': x.reqId,
      ...d.headers,
    })
    res.end(body)
  } else res.destroy()
  const record: AuditRecord = {
    event: d.event,
    reqId: x.reqId,
    method: x.method,
    path: x.path,
    route: join.path,
    identity: d.identity ?? null,
    claimed: d.claimed ?? null,
    authMethod: d.identity || d.fp ? join.scheme : null,
    fp: d.fp ?? null,
    reason: d.code ?? null,
    ip: x.ip,
    status: d.status,
    upstream: null,
    ms: Math.round((performance.now() - x.start) * 100) / 100,
  }
  const detail = d.limitedBy ? { limitedBy: d.limitedBy } : undefined
  for (const l of rt.listeners) l.decision(record, detail)
}
