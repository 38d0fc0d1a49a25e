// apiKey: the key from any configured header, compared by digest; the challenge names every header.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { createApiKeyAuthenticator } from '../../../src/auth/api-key.js'
import { CredentialTable } from '../../../src/auth/static-credentials.js'
import type { AuthRequest } from '../../../src/auth/types.js'

const KEY_A = 'a'.repeat(40)
const KEY_B = 'b'.repeat(40)

function request(headers: Record<string, string>): AuthRequest {
  const raw = { headers } as unknown as IncomingMessage
  return { raw, method: 'GET', path: '/', query: '', target: '/', tls: false, now: Date.now() }
}

t.test('keys in the default and a custom header; WWW-Authenticate names both headers', async (t) => {
  const dflt = new CredentialTable()
  dflt.add(KEY_A, { name: 'dash', roles: ['reader'] })
  const custom = new CredentialTable()
  custom.add(KEY_B, { name: 'ci', roles: ['admin'] })
  const a = createApiKeyAuthenticator(new Map([['x-api-key', dflt], ['x-ci-token', custom]]))
  t.equal(a.challenge, 'ApiKey realm="portcullis", header="x-api-key", ApiKey realm="portcullis", header="x-ci-token"')
  t.match(await a.authenticate(request({ 'x-api-key': KEY_A })), { kind: 'identity', identity: { name: 'dash', method: 'apiKey' } })
  t.match(await a.authenticate(request({ 'x-ci-token': ` ${KEY_B} ` })), { kind: 'identity', identity: { name: 'ci' } }, 'trimmed')
  t.match(await a.authenticate(request({ 'x-api-key': KEY_B })), { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid API key' }, 'a key is only valid in its own header')
  t.same(await a.authenticate(request({ 'x-api-key': '  ' })), { kind: 'absent' }, 'empty = missing')
  t.equal(a.present({ headers: {} } as IncomingMessage), false)
})

t.test('an API key followed by U+00A0 was accepted; only spaces and tabs are trimmed', async (t) => {
  const table = new CredentialTable()
  table.add(KEY_A, { name: 'dash', roles: [] })
  const a = createApiKeyAuthenticator(new Map([['x-api-key', table]]))
  t.match(await a.authenticate(request({ 'x-api-key': `${KEY_A}\u00a0` })), { kind: 'deny', code: 'INVALID_CREDENTIALS' })
  t.match(await a.authenticate(request({ 'x-api-key': `\t${KEY_A} ` })), { kind: 'identity', identity: { name: 'dash' } })
  t.match(await a.authenticate(request({ 'x-api-key': '\u00a0' })), { kind: 'deny', code: 'INVALID_CREDENTIALS' }, 'U+00A0 alone is a (wrong) key, not empty')
  t.same(await a.authenticate(request({ 'x-api-key': '' })), { kind: 'absent' }, 'empty = missing')
})
