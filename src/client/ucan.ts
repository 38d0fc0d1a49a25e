// `portcullis/client` UCAN side (DESIGN §4.8, §8): the did:key of a key, delegations as containers,
// and invocations bound to one request as an `Authorization: Bearer` value. Pure functions; no I/O.
import type { KeyObject } from 'node:crypto'
import { encodeContainer } from '../ucan/container.js'
import { didOf, loadPrivateKey } from '../ucan/did-key.js'
import { delegate, invoke, requestArgs, tokensOf } from '../ucan/issue.js'
import { tokenCid } from '../ucan/token.js'

export type KeyInput = KeyObject | string | Buffer

function keyOf(k: KeyInput): KeyObject {
  return typeof k === 'string' || Buffer.isBuffer(k) ? loadPrivateKey(k) : k
}

/** The did:key of an Ed25519 or P-256 private key (PEM or KeyObject). */
export function ucanDid(key: KeyInput): string {
  return didOf(keyOf(key)).did
}

export interface UcanDelegateOptions {
  key: KeyInput
  /** Who receives the capability (its did:key). */
  aud: string
  /** The subject DID, or `null` for a powerline (every subject the issuer holds). */
  sub: string | null
  cmd: string
  /** Policy statements over the invocation's args, e.g. `[["==", ".method", "POST"]]`. */
  pol?: unknown[]
  /** Lifetime in seconds (default 30 days); `null` never expires. */
  ttlS?: number | null
  /** Containers this delegation builds on: their tokens go into the output, so chains compose. */
  proofs?: readonly string[]
  now?: number
}

/** A delegation, as a container (header `C`) holding it and every token of `proofs`. */
export function ucanDelegate(o: UcanDelegateOptions): string {
  return ucanDelegation(o).container
}

/** The same, with the new delegation's CID (base32): what a scheme's `revoked` lists to revoke it. */
export function ucanDelegation(o: UcanDelegateOptions): { container: string; cid: string } {
  const token = delegate({ key: keyOf(o.key), aud: o.aud, sub: o.sub, cmd: o.cmd, ...(o.pol ? { pol: o.pol } : {}), ttlS: o.ttlS === undefined ? 30 * 86_400 : o.ttlS, ...(o.now !== undefined ? { now: o.now } : {}) })
  return { container: encodeContainer([token, ...tokensOf(o.proofs ?? [])], { header: 'C' }), cid: tokenCid(token).toString() }
}

export interface UcanInvokeOptions {
  key: KeyInput
  /** The subject whose authority is invoked (the gateway scheme's `subjects`). */
  sub: string
  /** The route's `command`. */
  cmd: string
  /** Delegation containers; the chain from `sub` to this key is found among their tokens. */
  proofs: readonly string[]
  /** The gateway's DID, when its scheme sets `audience`. */
  aud?: string
  /** Seconds until the invocation expires (default 60; at most the scheme's `window`). */
  ttlS?: number
  method: string
  /** The request target exactly as it will be sent: path and query (`/pools/7/preload?x=1`), or a URL. */
  target: string | URL
  body?: Uint8Array | string
  /** Extra args for the delegations' policies (method, path and digest are always set from the request). */
  args?: Record<string, unknown>
  now?: number
}

/** An invocation bound to one request: `{ authorization: 'Bearer <container>' }`. */
export function ucanInvocation(o: UcanInvokeOptions): { authorization: string } {
  const target = typeof o.target === 'string' && o.target.startsWith('/') ? o.target : pathAndQuery(new URL(o.target))
  const body = typeof o.body === 'string' ? Buffer.from(o.body, 'utf8') : o.body
  const tokens = invoke({
    key: keyOf(o.key),
    sub: o.sub,
    cmd: o.cmd,
    args: { ...o.args, ...requestArgs(o.method.toUpperCase(), target, body) },
    proofs: tokensOf(o.proofs),
    ...(o.aud !== undefined ? { aud: o.aud } : {}),
    ttlS: o.ttlS ?? 60,
    ...(o.now !== undefined ? { now: o.now } : {}),
  })
  return { authorization: 'Bearer ' + encodeContainer(tokens, { header: 'C' }) }
}

function pathAndQuery(url: URL): string {
  return url.pathname + url.search
}
