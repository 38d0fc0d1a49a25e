// bearer (DESIGN §4.1): the token between `Bearer` and the end, only spaces and tabs trimmed; empty =
// missing; not b64token = INVALID_CREDENTIALS. Looked up by digest.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { bearerToken, createBearerAuthenticator, isB64Token, trimSpacesAndTabs } from '../../../src/auth/bearer.js'
import { CredentialTable } from '../../../src/auth/static-credentials.js'
import type { AuthRequest } from '../../../src/auth/types.js'

const TOKEN = 'tok-' + 'a1b2c3d4'.repeat(5)

function raw(authorization?: string): IncomingMessage {
  return { headers: authorization === undefined ? {} : { authorization } } as unknown as IncomingMessage
}
function request(authorization?: string): AuthRequest {
  return { raw: raw(authorization), method: 'GET', path: '/', query: '', target: '/', tls: false, now: Date.now() }
}

t.test('a token followed by U+00A0 (or any non-space Unicode whitespace) was accepted', async (t) => {
  const table = new CredentialTable()
  table.add(TOKEN, { name: 'ops', roles: [] })
  const a = createBearerAuthenticator(table)
  t.match(await a.authenticate(request(`Bearer ${TOKEN}`)), { kind: 'identity', identity: { name: 'ops', method: 'bearer' } })
  for (const ws of ['\u00a0', '\u2003', '\u3000', '\ufeff', '\u000b', '\u000c']) {
    const out = await a.authenticate(request(`Bearer ${TOKEN}${ws}`))
    t.match(out, { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid token' }, JSON.stringify(ws))
    t.equal(a.present(raw(`Bearer ${TOKEN}${ws}`)), true, 'present: refused, not missing')
  }
})

t.test('bearerToken: scheme any case, spaces and tabs trimmed, empty = missing', async (t) => {
  t.equal(bearerToken(raw(`Bearer ${TOKEN}`)), TOKEN)
  t.equal(bearerToken(raw(` \tbEARER \t ${TOKEN} \t`)), TOKEN)
  for (const missing of [undefined, '', ' ', 'Bearer', 'bearer ', 'Bearer \t \t', 'Basic abc', `Bearer${TOKEN}`, `Bearerx ${TOKEN}`]) {
    t.equal(bearerToken(raw(missing)), undefined, JSON.stringify(missing))
  }
  t.equal(bearerToken(raw('Bearer a b')), 'a b', 'returned as sent; refused by the authenticator')
  t.equal(bearerToken(raw(`\u00a0Bearer ${TOKEN}`)), undefined, 'U+00A0 before the scheme word: not a Bearer header')
})

t.test('a token that is not RFC 6750 b64token → INVALID_CREDENTIALS, never looked up', async (t) => {
  const table = new CredentialTable()
  table.add('a b', { name: 'impossible', roles: [] }) // config refuses this; the table alone does not
  const a = createBearerAuthenticator(table)
  t.match(await a.authenticate(request('Bearer a b')), { kind: 'deny', code: 'INVALID_CREDENTIALS' })
  for (const ok of ['abc', 'A-Z.0_9~+/', 'abc==', 'x=']) t.ok(isB64Token(ok), ok)
  for (const bad of ['', '=', 'a=b', 'a b', 'a,b', 'a"b', 'é', 'a\u00a0']) t.notOk(isB64Token(bad), JSON.stringify(bad))
})

t.test('trimSpacesAndTabs trims only those', async (t) => {
  t.equal(trimSpacesAndTabs(' \t x \t '), 'x')
  t.equal(trimSpacesAndTabs('\u00a0x\u00a0'), '\u00a0x\u00a0')
  t.equal(trimSpacesAndTabs(' \t '), '')
})
