// A table of static credentials (bearer tokens, API keys) held only as SHA-256 digests.
// Lookup compares the presented credential's digest with every entry in constant time.
import { digestsEqual, sha256 } from './credential.js'
import { isStoredDigest } from '../config/secrets.js'

export interface CredentialOwner {
  name: string
  roles: readonly string[]
}

export class CredentialTable<O extends CredentialOwner = CredentialOwner> {
  private readonly entries: { digest: Buffer; owner: O }[] = []

  /** Add a resolved secret or a stored `sha256:` digest; returns false if the digest is already taken. */
  add(secretOrDigest: string, owner: O): boolean {
    const digest = isStoredDigest(secretOrDigest) ? Buffer.from(secretOrDigest.slice(7), 'hex') : sha256(secretOrDigest)
    if (this.entries.some((e) => digestsEqual(e.digest, digest))) return false
    this.entries.push({ digest, owner })
    return true
  }

  get size(): number {
    return this.entries.length
  }

  /** Visits every entry (no early exit) so timing does not depend on which one matched. */
  find(presented: string): O | undefined {
    const digest = sha256(presented)
    let found: O | undefined
    for (const e of this.entries) if (digestsEqual(e.digest, digest) && found === undefined) found = e.owner
    return found
  }
}
