// `apiKey`: a key in `x-api-key` or an identity's own `apiKeyHeader` (DESIGN §4.2); never from the query.
// Never logs or returns the key, only its fingerprint.
import type { Authenticator, AuthOutcome, AuthRequest } from './types.js'
import { digestFingerprint, sha256 } from './credential.js'
import type { CredentialTable } from './static-credentials.js'
import { trimSpacesAndTabs } from './bearer.js'

export const DEFAULT_API_KEY_HEADER = 'x-api-key'

/** `tables`: lower-cased header name → the keys accepted in that header. */
export function createApiKeyAuthenticator(tables: ReadonlyMap<string, CredentialTable>): Authenticator {
  const headers = [...tables.keys()]
  const presented = (req: { headers: Record<string, string | string[] | undefined> }) => {
    for (const h of headers) {
      const v = req.headers[h]
      if (typeof v !== 'string') continue
      // Only spaces and tabs are trimmed (never U+00A0 and the like); empty = missing (DESIGN §4.2).
      const key = trimSpacesAndTabs(v)
      if (key !== '') return { header: h, key }
    }
    return undefined
  }
  return {
    name: 'apiKey',
    kind: 'apiKey',
    credentialHeaders: headers,
    // One challenge per accepted header, so a client learns every header name it may use.
    challenge: (headers.length ? headers : [DEFAULT_API_KEY_HEADER]).map((h) => `ApiKey realm="portcullis", header="${h}"`).join(', '),
    present: (req) => presented(req) !== undefined,
    authenticate(req: AuthRequest): AuthOutcome {
      const p = presented(req.raw)
      if (!p) return { kind: 'absent' }
      const digest = sha256(p.key)
      const fp = digestFingerprint(digest)
      const owner = tables.get(p.header)!.findDigest(digest)
      if (!owner) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid API key', fp }
      return { kind: 'identity', identity: { name: owner.name, roles: owner.roles, method: 'apiKey', fp, ...(owner.claims ? { claims: owner.claims } : {}) } }
    },
  }
}
