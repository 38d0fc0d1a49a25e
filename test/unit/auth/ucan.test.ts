// The `type: ucan` scheme (DESIGN §4.8, §4.9): request binding (method, path + query, body digest),
// refusals and their codes with the credential's fingerprint, bindCertificate (issuer DID as a URI:
// SAN of the verified client certificate), the authorize hook, and config compile errors.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createUcanAuthenticator, INVALID_UCAN, NOT_BOUND } from '../../../src/auth/ucan.js'
import { tokenFingerprint } from '../../../src/auth/credential.js'
import type { AuthRequest } from '../../../src/auth/types.js'
import { loadConfigText } from '../../../src/config/load.js'
import { encodeContainer } from '../../../src/ucan/container.js'
import { invoke, requestArgs } from '../../../src/ucan/issue.js'
import { chain, NOW, principal } from '../ucan/helpers.js'
import { makePki } from '../../e2e/certs.js'
import { tokenCid } from '../../../src/ucan/token.js'
import { base58btc } from 'multiformats/bases/base58'

const c = chain()
const auth = createUcanAuthenticator({ name: 'cluster', subjects: new Set([c.root.did]), windowMs: 300_000, roles: ['worker'], revoked: new Set(), bindCertificate: false })

function bearer(method: string, target: string, body?: string, extraArgs: Record<string, unknown> = {}): string {
  const tokens = invoke({ key: c.worker.key, sub: c.root.did, cmd: '/pool/preload', args: { ...requestArgs(method, target, body === undefined ? undefined : Buffer.from(body)), ...extraArgs }, proofs: [], chain: [c.dlg], ttlS: 60, now: NOW })
  return encodeContainer(tokens)
}

function request(token: string, o: { method?: string; target?: string; body?: string; socket?: unknown } = {}): AuthRequest {
  const headers = { authorization: `Bearer ${token}` }
  const raw = { headers, rawHeaders: Object.entries(headers).flat(), socket: o.socket ?? {} } as unknown as IncomingMessage
  const target = o.target ?? '/pools/7/preload'
  const q = target.indexOf('?')
  return { raw, method: o.method ?? 'POST', path: q === -1 ? target : target.slice(0, q), query: q === -1 ? '' : target.slice(q), target, tls: false, now: NOW * 1000, ...(o.body !== undefined ? { body: Buffer.from(o.body) } : {}) }
}

t.test('accepted: identity scheme:issuer, roles, fp, replay key by invocation CID, and the authorize hook', async (t) => {
  const token = bearer('POST', '/pools/7/preload?x=1', 'hi')
  const out = await auth.authenticate(request(token, { target: '/pools/7/preload?x=1', body: 'hi' }))
  t.equal(out.kind, 'identity')
  if (out.kind !== 'identity') return
  t.equal(out.identity.name, `cluster:${c.worker.did}`)
  t.same(out.identity.roles, ['worker'])
  t.equal(out.identity.fp, tokenFingerprint(token))
  t.match(out.identity.replay!.key, /^ucan:bafyrei[a-z2-7]+$/)
  t.ok(out.identity.replay!.ttlMs <= 120_000 && out.identity.replay!.ttlMs > 0)
  t.equal(out.identity.authorize!({ command: '/pool/preload' }), true)
  t.equal(out.identity.authorize!({ command: '/pool/drain' }), false)
  t.equal(out.identity.authorize!({ command: null }), false, 'fail closed on a route without a command')
})

t.test('request binding: method, path and query, body digest', async (t) => {
  const deny = { kind: 'deny', code: 'INVALID_CREDENTIALS', message: INVALID_UCAN }
  t.match(await auth.authenticate(request(bearer('GET', '/pools/7/preload'))), deny, 'method')
  t.match(await auth.authenticate(request(bearer('POST', '/pools/7/preload'), { target: '/pools/7/preload?a' })), deny, 'query')
  t.match(await auth.authenticate(request(bearer('POST', '/pools/7/preload', 'a'), { body: 'b' })), deny, 'body')
  t.match(await auth.authenticate(request(bearer('POST', '/pools/7/preload'), { body: 'b' })), deny, 'a body the invocation has no digest for')
  t.match(await auth.authenticate(request(bearer('POST', '/pools/7/preload', undefined, { digest: 'sha-256=:AAAA:' }))), deny, 'a digest for a body that was not sent')
  t.match(await auth.authenticate(request(bearer('POST', '/pools/7/preload'))), { kind: 'identity' }, 'no body, no digest')
})

t.test('refusals carry the fingerprint of what was presented; junk is Invalid UCAN', async (t) => {
  for (const junk of ['x', 'Babc', 'C' + 'A'.repeat(100_000), 'eyJ.a.b']) {
    t.same(await auth.authenticate(request(junk)), { kind: 'deny', code: 'INVALID_CREDENTIALS', message: INVALID_UCAN, fp: tokenFingerprint(junk) })
  }
  t.same(await auth.authenticate({ ...request('x'), raw: { headers: {}, rawHeaders: [], socket: {} } as unknown as IncomingMessage }), { kind: 'absent' })
})

t.test('bindCertificate: the issuer DID must be a URI: SAN of the verified client certificate', async (t) => {
  const bound = createUcanAuthenticator({ name: 'cluster', subjects: new Set([c.root.did]), windowMs: 300_000, roles: [], revoked: new Set(), bindCertificate: true })
  const pki = makePki()
  const mine = new X509Certificate(pki.client('w', { san: `URI:${c.worker.did}` }).cert)
  const other = new X509Certificate(pki.client('o', { san: `URI:${principal().did}` }).cert)
  const socket = (cert: X509Certificate | undefined, authorized = true) => ({ encrypted: true, authorized, getPeerX509Certificate: () => cert })
  const token = bearer('POST', '/pools/7/preload')
  t.match(await bound.authenticate(request(token, { socket: socket(mine) })), { kind: 'identity' })
  const notBound = { kind: 'deny', code: 'INVALID_CREDENTIALS', message: NOT_BOUND }
  t.match(await bound.authenticate(request(bearer('POST', '/pools/7/preload'), { socket: socket(other) })), notBound, 'another DID')
  t.match(await bound.authenticate(request(bearer('POST', '/pools/7/preload'), { socket: socket(mine, false) })), notBound, 'unverified chain')
  t.match(await bound.authenticate(request(bearer('POST', '/pools/7/preload'), { socket: socket(undefined) })), notBound, 'no certificate')
  t.match(await bound.authenticate(request(bearer('POST', '/pools/7/preload'))), notBound, 'not TLS')
})

t.test('config: subjects, audience, revoked and command are checked at load', async (t) => {
  const yaml = (scheme: string, route = 'command: /pool/preload') => `version: 1
upstreams: { u: { url: "http://127.0.0.1:9" } }
schemes:
  cluster:
    type: ucan
${scheme}
routes:
  - { path: /x, upstream: u, auth: [cluster], ${route} }
`
  // A revoked CID may be written base58btc (z…) as well as base32 (b…): the same token is refused.
  const z = tokenCid(c.dlg).toString(base58btc)
  const revoked = loadConfigText(yaml(`    subjects: ["${c.root.did}"]\n    revoked: ["${z}"]`), 'g.yaml', {})
  t.ok(revoked.ok)
  if (revoked.ok) t.match(await revoked.gateway.authenticators.get('cluster')!.authenticate(request(bearer('POST', '/pools/7/preload'))), { kind: 'deny', code: 'KEY_REVOKED' })
  const good = loadConfigText(yaml(`    subjects: ["${c.root.did}"]`), 'g.yaml', {})
  t.ok(good.ok)
  if (good.ok) t.equal(good.gateway.routes[0]!.command, '/pool/preload')
  const bad = loadConfigText(yaml(`    subjects: ["did:web:example.com"]\n    audience: "gateway"\n    revoked: ["bafy-nope"]`, 'command: /Pool'), 'g.yaml', {})
  t.notOk(bad.ok)
  const text = bad.ok ? '' : bad.errors.map((e) => e.message).join('\n')
  t.match(text, /subjects.*did:key/)
  t.match(text, /audience.*DID/)
  t.match(text, /revoked.*token CID/)
  t.match(text, /command.*UCAN command/)
  const missing = loadConfigText(yaml(`    subjects: ["${c.root.did}"]`, 'roles: [w]'), 'g.yaml', {})
  t.notOk(missing.ok)
  t.match(missing.ok ? '' : missing.errors.map((e) => e.message).join('\n'), /needs `command`/)
})
