// A table of static credentials (bearer tokens, API keys) held only as SHA-256 digests (DESIGN §4.1, §4.2).
// Lookup is one hash and one Map lookup keyed by the presented credential's digest: its cost does not
// grow with the number of identities, and no comparison ever looks at the secret's own bytes.
import { sha256 } from './credential.js'
import { isStoredDigest } from '../config/secrets.js'
import type { CompileContext, ConfigPath } from '../config/types.js'
import type { IdentityEntry } from './types.js'

export interface CredentialOwner {
  name: string
  roles: readonly string[]
  /** `identities[].claims` (DESIGN §4.9). */
  claims?: Readonly<Record<string, unknown>>
}

export class CredentialTable<O extends CredentialOwner = CredentialOwner> {
  /** Key: the digest's 32 bytes as a latin1 string (one allocation per lookup, no hex encoding). */
  private readonly byDigest = new Map<string, O>()

  /** Add a resolved secret or a stored `sha256:` digest; returns false if the digest is already taken. */
  add(secretOrDigest: string, owner: O): boolean {
    const digest = isStoredDigest(secretOrDigest) ? Buffer.from(secretOrDigest.slice(7), 'hex') : sha256(secretOrDigest)
    const key = digest.toString('latin1')
    if (this.byDigest.has(key)) return false
    this.byDigest.set(key, owner)
    return true
  }

  get size(): number {
    return this.byDigest.size
  }

  /** The owner of the credential whose SHA-256 this is (as digestKey gives it: latin1). */
  findKey(key: string): O | undefined {
    return this.byDigest.get(key)
  }
}

/** Who a credential of an `identities:` entry authenticates: its name, roles (none when absent) and claims. */
export function credentialOwner(id: IdentityEntry): CredentialOwner {
  return { name: id.name, roles: id.roles ?? [], ...(id.claims ? { claims: id.claims } : {}) }
}

/**
 * Each secret of an identity's `bearer` / `apiKey` (one, or a rotation list) with its config path: a
 * reference resolved through the context (which records why one does not resolve), a stored `sha256:`
 * digest as written.
 */
export function eachStaticSecret(value: string | string[] | undefined, at: ConfigPath, ctx: CompileContext, use: (secret: string, path: ConfigPath) => void): void {
  if (value === undefined) return
  const list = Array.isArray(value) ? value : [value]
  list.forEach((ref, j) => {
    const path = Array.isArray(value) ? [...at, j] : at
    const secret = isStoredDigest(ref) ? ref : ctx.secret(path, ref)
    if (secret !== undefined) use(secret, path)
  })
}
