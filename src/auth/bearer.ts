// `bearer`: static tokens in `Authorization: Bearer <token>` (DESIGN §4.1). Rotation lists are just
// several digests for one identity. Never logs or returns the token, only its fingerprint.
import type { IncomingMessage } from 'node:http'
import type { Authenticator, AuthOutcome, AuthRequest } from './types.js'
import { tokenFingerprint } from './credential.js'
import type { CredentialTable } from './static-credentials.js'

/** The token of an `Authorization: Bearer` header (scheme word case-insensitive, trimmed), or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization
  if (header === undefined) return undefined
  const value = header.trim()
  if (value.length < 7 || value.slice(0, 6).toLowerCase() !== 'bearer' || (value[6] !== ' ' && value[6] !== '\t')) return undefined
  const token = value.slice(7).trim()
  return token === '' ? undefined : token
}

export function createBearerAuthenticator(tokens: CredentialTable): Authenticator {
  return {
    name: 'bearer',
    kind: 'bearer',
    credentialHeaders: ['authorization'],
    challenge: 'Bearer realm="portcullis"',
    present: (req) => bearerToken(req) !== undefined,
    authenticate(req: AuthRequest): AuthOutcome {
      const token = bearerToken(req.raw)
      if (token === undefined) return { kind: 'absent' }
      const fp = tokenFingerprint(token)
      const owner = tokens.find(token)
      if (!owner) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid token', fp }
      return { kind: 'identity', identity: { name: owner.name, roles: owner.roles, method: 'bearer', fp } }
    },
  }
}
