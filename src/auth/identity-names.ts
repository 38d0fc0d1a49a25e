// DESIGN §3.3: the one place identity names are made and reserved, so no two methods can produce
// the same name (an `identities:` entry `ops` is never the signer `ops` of a scheme). Pure.

/** Names the gateway itself gives: `loopback: allow` requests, and public routes. */
export const RESERVED_IDENTITY_NAMES: ReadonlySet<string> = new Set(['localhost', 'anonymous'])
/** The prefix of the join endpoint's own requests (`join:<keyid>`); never a scheme name. */
export const JOIN_IDENTITY_PREFIX = 'join'

/** Why an `identities[].name` is not allowed, or undefined. */
export function identityNameProblem(name: string): string | undefined {
  if (name.includes(':')) return `identity name "${name}" may not contain ":" (scheme identities are <scheme>:<subject>)`
  if (RESERVED_IDENTITY_NAMES.has(name)) return `identity name "${name}" is reserved`
  return undefined
}

/** Why a `schemes:` key is not allowed, or undefined. */
export function schemeNameProblem(name: string): string | undefined {
  if (name.includes(':') || name === JOIN_IDENTITY_PREFIX) return `scheme name "${name}" is not allowed: a scheme name contains no ":" and is not "${JOIN_IDENTITY_PREFIX}"`
  return undefined
}

/** The identity of a subject a scheme authenticated: `<scheme>:<subject>`. */
export function schemeIdentity(scheme: string, subject: string): string {
  return scheme + ':' + subject
}
