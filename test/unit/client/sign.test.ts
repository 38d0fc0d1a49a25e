// portcullis/client signing functions: what they put in the headers, and that the gateway accepts it.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { parseDictionary } from 'structured-headers'
import { signRfc9421, signWorkerV1, computeContentDigest, deriveKey } from '../../../src/client/index.js'
import { createRfc9421Authenticator } from '../../../src/auth/rfc9421.js'
import type { AuthOutcome, AuthRequest } from '../../../src/auth/types.js'

const KEY = 'k-0123456789abcdef0123456789abcdef'
const gateway = createRfc9421Authenticator({ name: 'signed', windowMs: 60_000, roles: [], keys: new Map([['w1', KEY]]) })

function arrive(method: string, url: string, headers: Record<string, string>, body?: string): AuthRequest {
  const u = new URL(url)
  const all: Record<string, string> = { host: u.host, ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) }
  const raw = { headers: all, rawHeaders: Object.entries(all).flat() } as unknown as IncomingMessage
  return { raw, method, path: u.pathname, query: u.search, target: u.pathname + u.search, body: body === undefined ? undefined : Buffer.from(body), tls: u.protocol === 'https:', now: Date.now() }
}

t.test('signWorkerV1', async (t) => {
  const h = signWorkerV1({ id: 'worker-1', secret: 'secret', now: 1700000000123 })
  t.same(Object.keys(h), ['x-worker-id', 'x-worker-timestamp', 'x-worker-signature'])
  t.equal(h['x-worker-timestamp'], '1700000000123')
  t.match(h['x-worker-signature'], /^[0-9a-f]{64}$/)
  t.equal(signWorkerV1({ id: 'worker-1', secret: Buffer.from('secret'), now: 1700000000123 })['x-worker-signature'], h['x-worker-signature'])
  t.match(signWorkerV1({ id: 'w', secret: 's' })['x-worker-timestamp'], /^\d{13}$/)
  t.throws(() => signWorkerV1({ id: '', secret: 's' }))
})

t.test('signRfc9421: default coverage and parameters', async (t) => {
  const h = signRfc9421({ keyId: 'w1', secret: KEY, method: 'GET', url: 'http://gw:8080/pools/1?x=1', created: 1700000000, nonce: 'abc' })
  t.equal(h['signature-input'], 'sig1=("@method" "@authority" "@path" "@query");created=1700000000;keyid="w1";nonce="abc"')
  t.match(h.signature, /^sig1=:[A-Za-z0-9+/]{43}=:$/)
  t.equal(h['content-digest'], undefined)
  const p = signRfc9421({ keyId: 'w1', secret: KEY, method: 'POST', url: 'http://gw/p?a=1', body: 'hi', created: 1, nonce: 'n', expires: 2, alg: true, label: 'x', components: ['content-type', '"@query-param";name="a"', '@method'], headers: { 'Content-Type': 'text/plain' } })
  t.equal(p['content-digest'], computeContentDigest('hi'))
  t.equal(
    p['signature-input'],
    'x=("@method" "@authority" "@path" "@query" "content-digest" "content-type" "@query-param";name="a");created=1;expires=2;keyid="w1";nonce="n";alg="hmac-sha256"',
    'extra components after the required ones, duplicates dropped',
  )
  t.throws(() => signRfc9421({ keyId: 'w1', secret: KEY, method: 'GET', url: 'http://gw/p', components: ['x-absent'] }), /cannot sign/)
  t.throws(() => signRfc9421({ keyId: 'bad id', secret: KEY, method: 'GET', url: 'http://gw/p' }), TypeError)
  const fresh = [1, 2, 3].map(() => signRfc9421({ keyId: 'w1', secret: KEY, method: 'GET', url: 'http://gw/p' })['signature-input'])
  t.equal(new Set(fresh.map((i) => (parseDictionary(i).get('sig1') as any)[1].get('nonce'))).size, 3, 'a new nonce each time')
})

t.test('the gateway accepts what the client signs', async (t) => {
  const cases: Array<[string, string, string | undefined, Record<string, string>]> = [
    ['GET', 'http://gw.example/pools/1', undefined, {}],
    ['GET', 'http://gw.example:8080/pools/1?b=2&a=1', undefined, {}],
    ['POST', 'http://GW.example/pools/1', '{"a":1}', {}],
    ['PUT', 'https://gw.example/pools/%7Ex', 'ü body', { 'content-type': 'text/plain; charset=utf-8' }],
    ['DELETE', 'http://[::1]:9000/x?', undefined, {}],
  ]
  for (const [method, url, body, headers] of cases) {
    const h = signRfc9421({ keyId: 'w1', secret: KEY, method, url, body, headers, components: Object.keys(headers) })
    const out = (await gateway.authenticate(arrive(method, url, { ...headers, ...h }, body))) as AuthOutcome
    t.equal(out.kind, 'identity', `${method} ${url}`)
  }
})

t.test('a derived key is used as its hex text', async (t) => {
  const master = 'm'.repeat(40)
  const deriving = createRfc9421Authenticator({ name: 's', windowMs: 60_000, roles: [], keys: new Map(), deriveMaster: master })
  const h = signRfc9421({ keyId: 'worker-9', secret: deriveKey(master, 'worker-9'), method: 'GET', url: 'http://gw/p' })
  t.equal(((await deriving.authenticate(arrive('GET', 'http://gw/p', { ...h }))) as AuthOutcome).kind, 'identity')
})
