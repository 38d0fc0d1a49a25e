// Header hygiene (DESIGN §3.6): hop-by-hop and Connection-named headers go, every client-sent x-auth-*
// (any case, `_` for `-`) goes, credentials go unless kept, and the identity headers are set last.
import t from 'tap'
import type { IncomingHttpHeaders } from 'node:http'
import { connectionNamed, forwardHeaders, isForwardingHeaderName, isIdentityHeaderName, replaceHeader, upstreamHeaders, type ForwardHeaderOptions } from '../../../src/proxy/headers.js'
import type { Identity } from '../../../src/auth/types.js'

const identity: Identity = { name: 'orchestratord', roles: ['control-plane', 'ops'], method: 'bearer', fp: 'token:abc123' }
const CREDENTIALS = new Set(['authorization', 'x-api-key', 'x-worker-id', 'x-worker-timestamp', 'x-worker-signature', 'signature', 'signature-input'])

function options(o: Partial<ForwardHeaderOptions> = {}): ForwardHeaderOptions {
  return { strip: CREDENTIALS, setIdentityHeaders: true, upgrade: false, host: '127.0.0.1:9000', forwardedFor: '127.0.0.1', proto: 'http', ...o }
}

t.test('isIdentityHeaderName: x-auth- in any case, with _ for -', async (t) => {
  for (const n of ['x-auth-identity', 'x_auth_identity', 'x-auth_fingerprint', 'x_auth-method', 'x-auth-roles', 'x-auth-anything', 'x-auth-assertion', 'x-auth-', 'x_auth_']) t.equal(isIdentityHeaderName(n), true, n)
  for (const n of ['x-auth', 'x-authx-identity', 'x-authidentity', 'authorization', 'x-api-key', 'xx-auth-identity']) t.equal(isIdentityHeaderName(n), false, n)
})

t.test('connectionNamed lower-cases and trims the listed names', async (t) => {
  t.same([...connectionNamed('close, X-Secret ,  x-auth-identity')!], ['close', 'x-secret', 'x-auth-identity'])
  t.same([...connectionNamed(['keep-alive', 'X-A'])!], ['keep-alive', 'x-a'])
  t.equal(connectionNamed(undefined), undefined)
  // the fast paths: keep-alive names only itself (hop-by-hop already); close still names `close`
  t.equal(connectionNamed('keep-alive'), undefined)
  t.same([...connectionNamed('close')!], ['close'])
  t.same([...connectionNamed('Close')!], ['close'])
  t.same([...connectionNamed('keep-alive, x-secret')!], ['keep-alive', 'x-secret'])
})

t.test('a header named by a bare Connection: close or keep-alive is dropped too', async (t) => {
  const out = forwardHeaders({ host: 'h', connection: 'close', close: 'x', 'keep-alive': 'timeout=5', 'x-keep-me': '1' }, options())
  t.equal(out['close'], undefined)
  t.equal(out['keep-alive'], undefined)
  t.equal(out['x-keep-me'], '1')
  const back = upstreamHeaders(raw(['Connection', 'Keep-Alive', 'Keep-Alive', 'timeout=5', 'close', 'y', 'Content-Type', 'text/plain']))
  t.same(back, ['close', 'y', 'content-type', 'text/plain'], 'keep-alive is dropped; a header keep-alive does not name stays')
})

t.test('hop-by-hop and Connection-named headers are dropped; others are kept', async (t) => {
  const incoming: IncomingHttpHeaders = {
    host: 'gateway.example',
    connection: 'close, x-drop-me',
    'keep-alive': 'timeout=5',
    'proxy-connection': 'keep-alive',
    te: 'trailers',
    trailer: 'x-t',
    'transfer-encoding': 'chunked',
    upgrade: 'websocket',
    'proxy-authorization': 'Basic abc',
    'proxy-authenticate': 'Basic',
    'x-drop-me': '1',
    'x-keep-me': '2',
    'content-type': 'text/plain',
  }
  const out = forwardHeaders(incoming, options())
  for (const h of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'x-drop-me']) t.equal(out[h], undefined, `${h} dropped`)
  t.equal(out['x-keep-me'], '2')
  t.equal(out['content-type'], 'text/plain')
  t.equal(out.host, '127.0.0.1:9000', 'Host is the upstream')
  t.equal(out['x-forwarded-host'], 'gateway.example')
  t.equal(out['x-forwarded-for'], '127.0.0.1')
  t.equal(out['x-forwarded-proto'], 'http')
})

t.test('client x-auth-* never survive; identity headers are set, not appended', async (t) => {
  const incoming: IncomingHttpHeaders = {
    'x-auth-identity': 'admin',
    'x-auth-roles': 'admin',
    x_auth_identity: 'admin',
    x_auth_method: 'forged',
    'x-auth_fingerprint': 'token:000000',
    'x-auth-assertion': 'forged',
    connection: 'x-auth-identity, x-auth-roles',
  }
  const out = forwardHeaders(incoming, options({ identity }))
  t.equal(out['x-auth-identity'], 'orchestratord')
  t.equal(out['x-auth-method'], 'bearer')
  t.equal(out['x-auth-roles'], 'control-plane,ops', 'comma-separated without spaces')
  t.equal(out['x-auth-fingerprint'], 'token:abc123')
  t.equal(out['x-auth-assertion'], undefined)
  const authNames = Object.keys(out).filter((n) => isIdentityHeaderName(n.toLowerCase()))
  t.same(authNames.sort(), ['x-auth-fingerprint', 'x-auth-identity', 'x-auth-method', 'x-auth-roles'], 'only the gateway\'s four, once each')

  const anonymous = forwardHeaders(incoming, options())
  t.same(Object.keys(anonymous).filter((n) => isIdentityHeaderName(n)), [], 'a public route forwards no x-auth-* at all')
  const off = forwardHeaders(incoming, options({ identity, setIdentityHeaders: false }))
  t.same(Object.keys(off).filter((n) => isIdentityHeaderName(n)), [], 'identityHeaders: false sets none and still strips the client\'s')
})

t.test('credentials are stripped by default and kept with strip: null', async (t) => {
  const incoming: IncomingHttpHeaders = { authorization: 'Bearer secret', 'x-api-key': 'k', 'x-worker-signature': 's', signature: 'sig=:x:', 'signature-input': 'sig=()', 'x-other': 'o' }
  const stripped = forwardHeaders(incoming, options({ identity }))
  for (const h of CREDENTIALS) t.equal(stripped[h], undefined, `${h} stripped`)
  t.equal(stripped['x-other'], 'o')
  const kept = forwardHeaders(incoming, options({ identity, strip: null }))
  t.equal(kept.authorization, 'Bearer secret')
  t.equal(kept['x-api-key'], 'k')
  t.equal(kept.signature, 'sig=:x:')
})

t.test('Upgrade passes only when asked (websocket routes)', async (t) => {
  const incoming: IncomingHttpHeaders = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k' }
  const plain = forwardHeaders(incoming, options())
  t.equal(plain.upgrade, undefined)
  t.equal(plain.connection, undefined)
  t.equal(plain['sec-websocket-key'], 'k')
  const ws = forwardHeaders(incoming, options({ upgrade: true }))
  t.equal(ws.upgrade, 'websocket')
  t.equal(ws.connection, 'upgrade')
})

t.test('Expect is not forwarded (the gateway answered 100-continue itself)', async (t) => {
  const out = forwardHeaders({ expect: '100-continue', 'content-length': '5' }, options())
  t.equal(out.expect, undefined)
  t.equal(out['content-length'], '5')
})

t.test('extra headers (the assertion) are set after stripping', async (t) => {
  const out = forwardHeaders({ 'x-auth-assertion': 'forged' }, options({ identity, extra: { 'x-auth-assertion': 'signed' } }))
  t.equal(out['x-auth-assertion'], 'signed')
})

/** Raw header pairs as undici hands them to a dispatch handler. */
function raw(pairs: string[]): Buffer[] {
  return pairs.map((p) => Buffer.from(p, 'latin1'))
}

t.test('upstreamHeaders drops hop-by-hop and Connection-named headers, lower-cases names and keeps repeats in order', async (t) => {
  const out = upstreamHeaders(raw([
    'Connection', 'keep-alive, X-Internal', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'x-internal', 'i',
    'Content-Type', 'text/event-stream', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'SET-COOKIE', 'c=3', 'X-Caf\u00e9', 'cr\u00e8me',
  ]))
  t.same(out, ['content-type', 'text/event-stream', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'set-cookie', 'c=3', 'x-caf\u00e9', 'cr\u00e8me'])
})

t.test('upstreamHeaders: a name the Connection header lists in a second Connection line is dropped too; __proto__ is a plain name', async (t) => {
  const out = upstreamHeaders(raw(['Connection', 'close', 'Connection', 'x-second', 'x-second', '2', 'close', '1', '__proto__', 'p', 'constructor', 'c']))
  t.same(out, ['__proto__', 'p', 'constructor', 'c'])
})

t.test('replaceHeader: every line of the name the upstream sent gives way to the one value set', async (t) => {
  const out = upstreamHeaders(raw(['X-Request-Id', 'upstream-1', 'Content-Type', 'text/plain', 'x-request-id', 'upstream-2']))
  replaceHeader(out, 'x-request-id', 'ours')
  replaceHeader(out, 'x-ratelimit-limit', '10')
  t.same(out, ['content-type', 'text/plain', 'x-request-id', 'ours', 'x-ratelimit-limit', '10'])
})

const FORGED: IncomingHttpHeaders = {
  forwarded: 'for=6.6.6.6;proto=https',
  'x-real-ip': '6.6.6.6',
  'x-original-url': '/admin',
  'x-rewrite-url': '/admin',
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-port': '443',
  x_forwarded_for: '6.6.6.7',
  x_real_ip: '6.6.6.8',
  'x_forwarded-server': 'evil',
  x_original_url: '/admin',
  'x-request-id': 'client-chosen',
  x_request_id: 'client-chosen-2',
  host: 'gateway.example',
}

t.test('isForwardingHeaderName: Forwarded, X-Real-IP, X-Original-URL, X-Rewrite-URL, every X-Forwarded-*, with _ for -', async (t) => {
  for (const n of ['forwarded', 'x-real-ip', 'x-original-url', 'x-rewrite-url', 'x-forwarded-for', 'x-forwarded-anything', 'x_forwarded_for', 'x_real_ip', 'x-forwarded_host', 'x_rewrite_url']) t.equal(isForwardingHeaderName(n), true, n)
  for (const n of ['x-forwarded', 'forwarded-for', 'x-real-ipx', 'x-request-id', 'x-original', 'via']) t.equal(isForwardingHeaderName(n), false, n)
})

t.test('an untrusted peer\'s forwarding headers are all dropped; x-forwarded-for is the peer, x-request-id the gateway\'s', async (t) => {
  const out = forwardHeaders(FORGED, options({ forwardedFor: '192.0.2.10', requestId: 'req-1' }))
  for (const name of Object.keys(out)) t.notOk(/6\.6\.6|evil|admin|client-chosen/.test(String(out[name])), `${name} carries nothing forged`)
  t.same(Object.keys(out).filter((n) => n.includes('_')), [], 'no underscore spelling survives')
  t.equal(out['x-forwarded-for'], '192.0.2.10')
  t.equal(out['x-forwarded-proto'], 'http')
  t.equal(out['x-forwarded-host'], 'gateway.example', 'the client\'s Host, not its X-Forwarded-Host')
  t.equal(out['x-request-id'], 'req-1')
  for (const n of ['forwarded', 'x-real-ip', 'x-original-url', 'x-rewrite-url', 'x-forwarded-prefix', 'x-forwarded-port']) t.equal(out[n], undefined, `${n} dropped`)
})

t.test('a trusted proxy\'s forwarding headers are kept; x-forwarded-for is its chain, then the peer', async (t) => {
  const out = forwardHeaders({ ...FORGED, 'x-forwarded-for': ['203.0.113.7, 10.0.0.1', '10.0.0.2'] as unknown as string }, options({ forwardedFor: '10.0.0.3', trustedPeer: true, requestId: 'req-2' }))
  t.equal(out['x-forwarded-for'], '203.0.113.7, 10.0.0.1, 10.0.0.2, 10.0.0.3')
  t.equal(out.forwarded, 'for=6.6.6.6;proto=https')
  t.equal(out['x-real-ip'], '6.6.6.6')
  t.equal(out['x-forwarded-prefix'], '/admin')
  t.equal(out['x-forwarded-host'], 'evil.example', 'the trusted proxy\'s view of the host is kept')
  t.equal(out['x-forwarded-proto'], 'http', 'set, never taken from the client')
  t.equal(out['x-request-id'], 'req-2', 'the gateway\'s id, even behind a trusted proxy')
  t.same(Object.keys(out).filter((n) => n.includes('_')), [], 'underscore spellings are dropped even from a trusted proxy')
})

t.test('x-forwarded-for is set once, never appended to a client value', async (t) => {
  const out = forwardHeaders({ 'x-forwarded-for': '6.6.6.6', 'X-FORWARDED-FOR': '6.6.6.7' } as IncomingHttpHeaders, options({ forwardedFor: '192.0.2.10' }))
  t.equal(out['x-forwarded-for'], '192.0.2.10')
  t.same(Object.keys(out).filter((n) => n.toLowerCase() === 'x-forwarded-for'), ['x-forwarded-for'])
})
