// `apiKey`: a key in `x-api-key` or an identity's own `apiKeyHeader` (DESIGN §4.2); never from the query.
// Never logs or returns the key, only its fingerprint.
import { Type } from '@sinclair/typebox'
import { Secret } from '../config/schema-parts.js'
import { eachEntry } from '../config/types.js'
import type { Authenticator, AuthOutcome, AuthRequest, Credential, IdentityMethod } from './types.js'
import { digestKey, keyedFingerprint } from './credential.js'
import { CredentialTable, credentialOwner, eachStaticSecret } from './static-credentials.js'
import { trimSpacesAndTabs } from './bearer.js'

const DEFAULT_API_KEY_HEADER = 'x-api-key'

/**
 * `x-api-key`, and every `apiKeyHeader` an identity names (the compiled authenticator's headers). A
 * non-empty value is a key; two API-key header fields in one request are ambiguous, whichever their names.
 */
const API_KEY_CREDENTIAL: Credential = {
  kind: 'apiKey',
  headers: [DEFAULT_API_KEY_HEADER],
  single: true,
  present: (req, headers) => headers.some((h) => typeof req.headers[h] === 'string' && trimSpacesAndTabs(req.headers[h] as string) !== ''),
}

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
    kind: API_KEY_CREDENTIAL.kind,
    local: true,
    credentialHeaders: headers,
    // One challenge per accepted header, so a client learns every header name it may use.
    challenge: (headers.length ? headers : [DEFAULT_API_KEY_HEADER]).map((h) => `ApiKey realm="portcullis", header="${h}"`).join(', '),
    present: (req) => presented(req) !== undefined,
    authenticate(req: AuthRequest): AuthOutcome {
      const p = presented(req.raw)
      if (!p) return { kind: 'absent' }
      const digest = digestKey(p.key)
      const fp = keyedFingerprint(digest)
      const owner = tables.get(p.header)!.findKey(digest)
      if (!owner) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid API key', fp }
      const identity = owner.claims ? { name: owner.name, roles: owner.roles, method: 'apiKey', fp, claims: owner.claims } : { name: owner.name, roles: owner.roles, method: 'apiKey', fp }
      return { kind: 'identity', identity }
    },
  }
}

const fields = {
  apiKey: Type.Optional(Type.Union([Secret, Type.Array(Secret, { minItems: 1 })])),
  // No schema default: the header only means something beside `apiKey`; without one, the key rides in x-api-key.
  apiKeyHeader: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' })),
}

/** `identities[].apiKey` (a key or a rotation list, or stored `sha256:` digests) in `apiKeyHeader`, default x-api-key. */
export const apiKey: IdentityMethod<typeof fields> = {
  name: 'apiKey',
  fields,
  unused: 'no identity has a apiKey',
  credential: API_KEY_CREDENTIAL,
  compile(identities, ctx) {
    const tables = new Map<string, CredentialTable>()
    eachEntry(ctx, identities, (i) => ['identities', i], (id, i) => {
      const owner = credentialOwner(id)
      const header = (id.apiKeyHeader ?? DEFAULT_API_KEY_HEADER).toLowerCase()
      eachStaticSecret(id.apiKey, ['identities', i, 'apiKey'], ctx, (s, path) => {
        let table = tables.get(header)
        if (!table) tables.set(header, (table = new CredentialTable()))
        if (!table.add(s, owner)) ctx.error(path, 'this API key is already given to another identity')
      })
    })
    return tables.size ? createApiKeyAuthenticator(tables) : undefined
  },
}
