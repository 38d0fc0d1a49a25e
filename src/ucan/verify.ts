// Verifies one UCAN invocation and its proof chain (delegation + invocation specs): signatures,
// time bounds, principal and subject alignment, trusted root, revocation, and what the chain allows
// (command attenuation and every delegation's policy). Returns a verdict; never throws on input.
import { commandCovers } from './command.js'
import { evaluatePolicy } from './policy.js'
import { decodeToken, UcanError, verifyTokenSignature, type Delegation, type Invocation, type Token, type UcanErrorName } from './token.js'

/** Seconds of clock difference tolerated on nbf and exp (core spec: ±60 s recommended). */
export const UCAN_CLOCK_TOLERANCE_S = 60

export interface VerifyOptions {
  /** Unix seconds of validation. */
  now: number
  /** DIDs whose authority roots a chain (the scheme's `subjects`); the invocation's `sub` must be one. */
  subjects: ReadonlySet<string>
  /** This executor's DID: an invocation naming another `aud` is refused; without it, any `aud` is refused. */
  audience?: string
  /** Accept no invocation that never expires or expires further ahead than this (seconds). */
  maxInvocationTtl?: number
  /** CIDs (base32 text) of delegations or invocations refused outright. */
  revoked?: ReadonlySet<string>
  /**
   * Delegation CIDs whose signature already verified. Sound because a CID is the hash of the token's
   * exact bytes (signature included): other bytes are another CID. Everything else is still checked.
   */
  verifiedDelegations?: { has(cid: string): boolean; add(cid: string): void }
}

export interface VerifiedInvocation {
  invocation: Token<Invocation>
  /** Root first, ending with the delegation to the invoker. */
  chain: Token<Delegation>[]
  /** The subject whose authority this is (a member of `subjects`). */
  subject: string
  /**
   * Authorization, separate from authentication: does the chain allow invoking `command` here?
   * The invocation's cmd must equal it, every delegation's cmd must cover it, every policy must hold.
   */
  allows(command: string): { ok: true } | { ok: false; reason: 'CommandMismatch' | 'MatchError' }
}

export type Verdict = { ok: true; value: VerifiedInvocation } | { ok: false; error: UcanErrorName; message: string }

/** A container's tokens: exactly one invocation; the delegations its prf names; the rest ignored. */
export function verifyContainerTokens(tokens: readonly Uint8Array[], options: VerifyOptions): Verdict {
  try {
    const decoded = tokens.map(decodeToken)
    const invocations = decoded.filter((t): t is Token<Invocation> => t.payload.kind === 'inv')
    if (invocations.length !== 1) throw new UcanError('Malformed', 'a container holds exactly one invocation')
    const byCid = new Map<string, Token>()
    for (const t of decoded) byCid.set(t.cidText, t)
    return { ok: true, value: verifyChain(invocations[0]!, byCid, options) }
  } catch (err) {
    if (err instanceof UcanError) return { ok: false, error: err.name, message: err.message }
    throw err
  }
}

/** An invocation's bytes and candidate proofs' bytes (the fixtures' shape). */
export function verifyInvocationBytes(invocation: Uint8Array, proofs: readonly Uint8Array[], options: VerifyOptions): Verdict {
  try {
    const inv = decodeToken(invocation)
    if (inv.payload.kind !== 'inv') throw new UcanError('Malformed', 'not an invocation')
    const byCid = new Map<string, Token>()
    for (const p of proofs) {
      const t = decodeToken(p)
      byCid.set(t.cidText, t)
    }
    return { ok: true, value: verifyChain(inv as Token<Invocation>, byCid, options) }
  } catch (err) {
    if (err instanceof UcanError) return { ok: false, error: err.name, message: err.message }
    throw err
  }
}

function verifyChain(inv: Token<Invocation>, available: ReadonlyMap<string, Token>, o: VerifyOptions): VerifiedInvocation {
  const p = inv.payload
  // 1. Resolve every proof the invocation names, root first, each a delegation.
  const chain: Token<Delegation>[] = p.prf.map((cid) => {
    const t = available.get(cid.toString())
    if (!t) throw new UcanError('UnavailableProof', 'a proof named in prf is not in the container')
    if (t.payload.kind !== 'dlg') throw new UcanError('InvalidClaim', 'prf names something other than a delegation')
    return t as Token<Delegation>
  })
  // 2. Signatures, before anything they sign is believed.
  if (!verifyTokenSignature(inv)) throw new UcanError('InvalidSignature', 'a signature does not verify')
  for (const t of chain) {
    if (o.verifiedDelegations?.has(t.cidText)) continue
    if (!verifyTokenSignature(t)) throw new UcanError('InvalidSignature', 'a signature does not verify')
    o.verifiedDelegations?.add(t.cidText)
  }
  // 3. Revocation of any token in play.
  if (o.revoked) for (const t of [inv, ...chain]) if (o.revoked.has(t.cidText)) throw new UcanError('Revoked', 'a token of the chain is revoked')
  // 4. Time bounds of every token.
  for (const t of [...chain, inv]) checkTime(t.payload, o.now)
  // 5. Principal alignment: each delegation's aud is the next issuer; the last one's aud is the invoker.
  for (let i = 0; i < chain.length; i++) {
    const next = i + 1 < chain.length ? chain[i + 1]!.payload.iss : p.iss
    if (principal(chain[i]!.payload.aud) !== principal(next)) throw new UcanError('InvalidAudience', 'the proof chain is not aligned')
  }
  // 6. Subject: the root is issued by its subject (never a powerline); every later subject matches or is null.
  let subject: string
  if (chain.length === 0) {
    if (p.iss !== p.sub) throw new UcanError('InvalidClaim', 'an invocation without proofs must be issued by its subject')
    subject = p.sub
  } else {
    const root = chain[0]!.payload
    if (root.sub === null) throw new UcanError('InvalidClaim', 'a powerline cannot be the root delegation')
    if (root.iss !== root.sub) throw new UcanError('InvalidClaim', 'the root delegation is not issued by its subject')
    subject = root.sub
    for (const d of chain) if (d.payload.sub !== null && d.payload.sub !== subject) throw new UcanError('InvalidSubject', 'the subjects of the chain differ')
    if (p.sub !== subject) throw new UcanError('InvalidSubject', "the invocation's subject is not the chain's")
  }
  if (!o.subjects.has(subject)) throw new UcanError('InvalidClaim', 'the chain is not rooted in a trusted subject')
  // 7. Audience: a named executor must be this one.
  if (p.aud !== undefined && (o.audience === undefined || p.aud !== o.audience)) throw new UcanError('InvalidAudience', 'the invocation is for another executor')
  // 8. The gateway's own bound: an invocation expires, and soon (its CID is held in the replay cache until then).
  if (o.maxInvocationTtl !== undefined && (p.exp === null || p.exp > o.now + o.maxInvocationTtl + UCAN_CLOCK_TOLERANCE_S)) {
    throw new UcanError('TooLong', 'the invocation expires later than the scheme window allows')
  }
  const delegations = chain.map((t) => t.payload)
  return {
    invocation: inv,
    chain,
    subject,
    allows(command) {
      if (p.cmd !== command || !delegations.every((d) => commandCovers(d.cmd, p.cmd))) return { ok: false, reason: 'CommandMismatch' }
      if (!delegations.every((d) => evaluatePolicy(d.pol, p.args))) return { ok: false, reason: 'MatchError' }
      return { ok: true }
    },
  }
}

function checkTime(p: Delegation | Invocation, now: number): void {
  if (p.nbf !== undefined && now < p.nbf - UCAN_CLOCK_TOLERANCE_S) throw new UcanError('TooEarly', 'a token is not valid yet')
  if (p.exp !== null && now > p.exp + UCAN_CLOCK_TOLERANCE_S) throw new UcanError('Expired', 'a token has expired')
}

/** Principal alignment ignores DID fragments (delegation spec §Principal Alignment). */
function principal(did: string): string {
  const hash = did.indexOf('#')
  return hash === -1 ? did : did.slice(0, hash)
}
