// DESIGN §4.9: an all-of group of methods (`auth: [bearer, [mtls, jobs]]`) compiled into one Authenticator.
// It owns combining its members' verdicts into one identity or one refusal; it never checks a credential
// itself and never lets a member's absence or refusal pass.
import type { AuthOutcome, AuthRequest, Authenticator, CredentialKind, Identity, ReplayMark } from './types.js'

/** The credential kinds of a group that ride in headers: a client certificate never makes a request ambiguous. */
export function groupKinds(members: readonly Authenticator[]): ReadonlySet<CredentialKind> {
  return new Set(members.filter((m) => m.credentialHeaders.length > 0).map((m) => m.kind))
}

export function createGroupAuthenticator(members: readonly Authenticator[]): Authenticator {
  const name = members.map((m) => m.name).join('+')
  return {
    name,
    kind: members[0]!.kind,
    members,
    credentialHeaders: [...new Set(members.flatMap((m) => m.credentialHeaders))],
    challenge: members.map((m) => m.challenge).join(', '),
    missingMessage: 'Missing credentials',
    // Partly present counts as present: authenticate() then refuses with the first missing member's code.
    present: (req) => members.some((m) => m.present(req)),
    needsBody: (req) => members.some((m) => m.needsBody?.(req) === true),
    notReady: () => members.map((m) => m.notReady?.()).find((r) => r !== undefined),
    async authenticate(req: AuthRequest): Promise<AuthOutcome> {
      if (!members.some((m) => m.present(req.raw))) return { kind: 'absent' }
      // In order: the first member whose credential is missing or refused names the 401.
      const identities: Identity[] = []
      for (const m of members) {
        const outcome = await m.authenticate(req)
        if (outcome.kind === 'deny') return outcome
        if (outcome.kind === 'absent') return { kind: 'deny', code: 'MISSING_CREDENTIALS', message: m.missingMessage ?? 'Missing credentials' }
        identities.push(outcome.identity)
      }
      return { kind: 'identity', identity: combine(name, identities) }
    },
  }
}

/** First member's name and fp; union of roles; claims merged with the first member's value winning. */
export function combine(method: string, identities: readonly Identity[]): Identity {
  const first = identities[0]!
  const roles = [...new Set(identities.flatMap((i) => i.roles))]
  // No prototype: a claim named __proto__ stays a claim.
  const claims: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const i of [...identities].reverse()) Object.assign(claims, i.claims ?? {})
  const replays: ReplayMark[] = identities.flatMap((i) => [...(i.replay ? [i.replay] : []), ...(i.moreReplays ?? [])])
  const expiries = identities.map((i) => i.expiresAt).filter((e): e is number => e !== undefined)
  const authorizers = identities.map((i) => i.authorize).filter((a): a is NonNullable<Identity['authorize']> => a !== undefined)
  const identity: Identity = { name: first.name, roles, method, fp: first.fp }
  if (Object.keys(claims).length > 0) identity.claims = claims
  if (replays.length > 0) identity.replay = replays[0]!
  if (replays.length > 1) identity.moreReplays = replays.slice(1)
  if (expiries.length > 0) identity.expiresAt = Math.min(...expiries)
  if (authorizers.length > 0) identity.authorize = (route) => authorizers.every((a) => a(route))
  return identity
}
