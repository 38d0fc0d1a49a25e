// DESIGN §4.9: a route's `roles` compiled once — plain roles, and `{role, claims}` entries that also need
// attributes of the identity. Owns only the matching rule; it never reads a credential.
import type { Identity } from './types.js'

/** A value a route may require of a claim (a list in the route = any of them). */
export type ClaimValue = string | number | boolean

export interface RoleRequirement {
  role: string
  /** claim name → accepted values (any of them). */
  claims: ReadonlyMap<string, readonly ClaimValue[]>
}

export interface RoleRule {
  /** Roles that suffice on their own. */
  plain: ReadonlySet<string>
  /** Roles that suffice only with the listed claims. */
  withClaims: readonly RoleRequirement[]
}

export type RoleEntry = string | { role: string; claims: Record<string, ClaimValue | ClaimValue[]> }

/** `roles:` of a route → its rule; null when the route names none (any identity passes). */
export function compileRoles(entries: readonly RoleEntry[] | undefined): RoleRule | null {
  if (!entries || entries.length === 0) return null
  const plain = new Set<string>()
  const withClaims: RoleRequirement[] = []
  for (const e of entries) {
    if (typeof e === 'string') plain.add(e)
    else withClaims.push({ role: e.role, claims: new Map(Object.entries(e.claims).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])) })
  }
  return { plain, withClaims }
}

/** Does the identity have one plain role, or one role with every claim it requires? */
export function rolesAllow(rule: RoleRule, identity: Pick<Identity, 'roles' | 'claims'>): boolean {
  if (identity.roles.some((r) => rule.plain.has(r))) return true
  return rule.withClaims.some((req) => identity.roles.includes(req.role) && [...req.claims].every(([name, wanted]) => claimMatches(claimOf(identity, name), wanted)))
}

/** Own properties only: a claim named `constructor` or `__proto__` is never inherited. */
function claimOf(identity: Pick<Identity, 'claims'>, name: string): unknown {
  const claims = identity.claims
  return claims !== undefined && Object.hasOwn(claims, name) ? claims[name] : undefined
}

/** Equal to one wanted value; an array-valued claim matches when it contains one. */
export function claimMatches(actual: unknown, wanted: readonly ClaimValue[]): boolean {
  if (Array.isArray(actual)) return actual.some((a) => wanted.includes(a as ClaimValue))
  return wanted.includes(actual as ClaimValue)
}

/** For `check` and docs: `worker{gpu=true}`. */
export function describeRoles(rule: RoleRule): string[] {
  return [...rule.plain, ...rule.withClaims.map((r) => `${r.role}{${[...r.claims].map(([k, v]) => `${k}=${v.join('|')}`).join(',')}}`)]
}
