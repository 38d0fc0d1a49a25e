// Issuing UCAN 1.0 tokens: delegations, and invocations bound to one HTTP request (DESIGN §4.8),
// with their proof chain found among the delegations a client holds. Used by the client and the CLI.
import { randomBytes, type KeyObject } from 'node:crypto'
import { computeContentDigest } from '../auth/content-digest.js'
import { encodeContainer, decodeContainerText } from './container.js'
import { commandCovers, isCommand } from './command.js'
import { didOf } from './did-key.js'
import { parsePolicy } from './policy.js'
import { decodeToken, DELEGATION_TAG, INVOCATION_TAG, signToken, type Delegation, type Token } from './token.js'

export interface DelegateOptions {
  /** The issuer's private key (Ed25519 or P-256). */
  key: KeyObject
  aud: string
  /** The subject DID, or null for a powerline. */
  sub: string | null
  cmd: string
  /** Policy statements (default: none). */
  pol?: unknown[]
  /** Lifetime in seconds from now; null = never expires. */
  ttlS: number | null
  /** Unix seconds; default the clock. */
  now?: number
  nbf?: number
}

export function delegate(o: DelegateOptions): Uint8Array {
  if (!isCommand(o.cmd)) throw new Error('cmd must be a UCAN command: lowercase, starting with /, no trailing /')
  const pol = o.pol ?? []
  parsePolicy(pol)
  const now = o.now ?? Math.floor(Date.now() / 1000)
  const payload: Record<string, unknown> = {
    iss: didOf(o.key).did,
    aud: o.aud,
    sub: o.sub,
    cmd: o.cmd,
    pol,
    nonce: new Uint8Array(randomBytes(12)),
    exp: o.ttlS === null ? null : now + o.ttlS,
    ...(o.nbf !== undefined ? { nbf: o.nbf } : {}),
  }
  return signToken(DELEGATION_TAG, payload, o.key)
}

/** The args that bind an invocation to one request: method, path + query as sent, body digest. */
export function requestArgs(method: string, target: string, body?: Uint8Array): Record<string, unknown> {
  return { method, path: target, ...(body !== undefined && body.length > 0 ? { digest: computeContentDigest(body) } : {}) }
}

export interface InvokeOptions {
  key: KeyObject
  sub: string
  cmd: string
  args: Record<string, unknown>
  /** Delegations to build the chain from (token bytes); root issued by `sub`, ending at this key. */
  proofs: readonly Uint8Array[]
  /** The chain exactly as given (root first), instead of searching `proofs` for one that covers `cmd`. */
  chain?: readonly Uint8Array[]
  aud?: string
  ttlS: number
  now?: number
}

/** An invocation and the chain it names, as token bytes (invocation first). */
export function invoke(o: InvokeOptions): Uint8Array[] {
  if (!isCommand(o.cmd)) throw new Error('cmd must be a UCAN command')
  const iss = didOf(o.key).did
  const chain = o.chain ? o.chain.map(decodeToken) : o.sub === iss ? [] : findChain(o.proofs.map(decodeToken), iss, o.sub, o.cmd)
  const now = o.now ?? Math.floor(Date.now() / 1000)
  const payload: Record<string, unknown> = {
    iss,
    sub: o.sub,
    ...(o.aud !== undefined ? { aud: o.aud } : {}),
    cmd: o.cmd,
    args: o.args,
    prf: chain.map((t) => t.cid),
    nonce: new Uint8Array(randomBytes(12)),
    exp: now + o.ttlS,
    iat: now,
  }
  return [signToken(INVOCATION_TAG, payload, o.key), ...chain.map((t) => t.bytes)]
}

/** Root first: walk back from a delegation to the invoker until one issued by the subject itself. */
function findChain(tokens: Token[], invoker: string, sub: string, cmd: string): Token<Delegation>[] {
  const dlgs = tokens.filter((t): t is Token<Delegation> => t.payload.kind === 'dlg' && (t.payload.sub === sub || t.payload.sub === null) && commandCovers(t.payload.cmd, cmd))
  const chain: Token<Delegation>[] = []
  let want = invoker
  for (let hops = 0; hops < 16; hops++) {
    const next = dlgs.find((t) => t.payload.aud === want && !chain.includes(t))
    if (!next) break
    chain.unshift(next)
    if (next.payload.iss === sub && next.payload.sub === sub) return chain
    want = next.payload.iss
  }
  throw new Error(`no proof chain from ${sub} to ${invoker} for ${cmd} among the given delegations`)
}

/** Every token of the containers given (proof files). */
export function tokensOf(containers: readonly string[]): Uint8Array[] {
  return containers.flatMap((c) => decodeContainerText(c.trim()))
}

export { encodeContainer }
