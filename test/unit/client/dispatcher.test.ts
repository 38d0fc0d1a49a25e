// The signing dispatcher against a real loopback server that verifies with the gateway's authenticators.
import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { Agent, request, fetch } from 'undici'
import { createSigningDispatcher, signingInterceptor } from '../../../src/client/index.js'
import { createRfc9421Authenticator } from '../../../src/auth/rfc9421.js'
import { createWorkerV1Authenticator } from '../../../src/auth/worker-v1.js'
import type { AuthOutcome, Authenticator } from '../../../src/auth/types.js'

const KEY = 'k-0123456789abcdef0123456789abcdef'
const authenticators: Authenticator[] = [
  createRfc9421Authenticator({ name: 'signed', windowMs: 60_000, roles: [], keys: new Map([['w1', KEY]]) }),
  createWorkerV1Authenticator({ name: 'workers', secret: KEY, windowMs: 300_000, roles: [] }),
]

async function verdict(req: IncomingMessage, body: Buffer): Promise<AuthOutcome | { kind: 'none' }> {
  const target = req.url ?? '/'
  const at = target.indexOf('?')
  for (const a of authenticators) {
    if (!a.present(req)) continue
    return a.authenticate({
      raw: req,
      method: req.method ?? 'GET',
      path: at === -1 ? target : target.slice(0, at),
      query: at === -1 ? '' : target.slice(at),
      target,
      body: a.needsBody?.(req) ? body : undefined,
      tls: false,
      now: Date.now(),
    })
  }
  return { kind: 'none' }
}

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  const out = await verdict(req, Buffer.concat(chunks))
  res.writeHead(out.kind === 'identity' ? 200 : 401, { 'content-type': 'application/json' })
  res.end(JSON.stringify(out.kind === 'deny' ? { code: out.code } : { kind: out.kind, name: out.kind === 'identity' ? out.identity.name : undefined }))
})

t.before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)))
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`

t.test('rfc9421: GET, query, string and Buffer bodies, header shapes', async (t) => {
  const agent = new Agent()
  t.teardown(() => agent.close())
  const d = createSigningDispatcher({ scheme: 'rfc9421', keyId: 'w1', secret: KEY }, agent)
  const send = async (path: string, opts: Record<string, unknown> = {}) => {
    const res = await request(base() + path, { dispatcher: d, ...opts })
    return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }
  }
  t.same(await send('/pools/1'), { status: 200, json: { kind: 'identity', name: 'signed:w1' } })
  t.equal((await send('/pools/1?x=1&y=%20')).status, 200)
  t.equal((await send('/p', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })).status, 200)
  t.equal((await send('/p', { method: 'POST', body: Buffer.alloc(1 << 20, 7) })).status, 200, '1 MB Buffer')
  t.equal((await send('/p', { method: 'PUT', body: new Uint8Array([1, 2, 3]), headers: ['x-a', '1', 'x-a', '2'] })).status, 200, 'flat header array')
  t.equal((await send('/p', { method: 'POST', body: 'x', headers: { signature: 'forged', 'content-digest': 'sha-256=:AAAA:' } })).status, 200, 'caller signature headers are replaced')
  const fromFetch = await fetch(base() + '/f?q=1', { dispatcher: d })
  t.equal(fromFetch.status, 200, 'fetch without a body')
  await fromFetch.arrayBuffer()
})

t.test('rfc9421: streamed bodies (and so fetch() with a body) are read, then signed', async (t) => {
  const agent = new Agent()
  t.teardown(() => agent.close())
  const d = createSigningDispatcher({ scheme: 'rfc9421', keyId: 'w1', secret: KEY }, agent)
  const streamed = await request(base() + '/p', { dispatcher: d, method: 'POST', body: Readable.from(['a', Buffer.from('b')]) })
  t.equal(streamed.statusCode, 200, 'a Readable body')
  t.same(await streamed.body.json(), { kind: 'identity', name: 'signed:w1' })
  for (const body of ['{"a":1}', Buffer.from('bytes'), new URLSearchParams({ q: '1' })]) {
    const r = await fetch(base() + '/f?x=1', { dispatcher: d, method: 'POST', body })
    t.equal(r.status, 200, `fetch with a ${body.constructor.name} body`)
    await r.arrayBuffer()
  }
  // Node's own global fetch (its bundled undici) with this dispatcher too.
  const viaGlobal = await globalThis.fetch(base() + '/g', { dispatcher: d, method: 'PUT', body: 'hello' } as RequestInit)
  t.equal(viaGlobal.status, 200, 'global fetch with a body')
  await viaGlobal.arrayBuffer()
  const broken = Readable.from((async function* () {
    yield 'a'
    throw new Error('source failed')
  })())
  await t.rejects(request(base() + '/p', { dispatcher: d, method: 'POST', body: broken }), /source failed/, 'a failing stream rejects, nothing hangs')
})

t.test('rfc9421: FormData bodies and a query option are refused before sending', async (t) => {
  const d = createSigningDispatcher({ scheme: 'rfc9421', keyId: 'w1', secret: KEY }, new Agent())
  const form = new FormData()
  form.append('a', '1')
  await t.rejects(request(base() + '/p', { dispatcher: d, method: 'POST', body: form as never }), TypeError)
  await t.rejects(request(base() + '/p', { dispatcher: d, query: { a: 1 } }), TypeError)
})

t.test('worker-v1: every request signed, streams fine', async (t) => {
  const agent = new Agent().compose(signingInterceptor({ scheme: 'worker-v1', id: 'worker-5', secret: KEY }))
  const res = await request(base() + '/v2/x', { dispatcher: agent, method: 'POST', body: Readable.from(['a', 'b']) })
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), { kind: 'identity', name: 'workers:worker-5' })
  const wrong = createSigningDispatcher({ scheme: 'worker-v1', id: 'worker-5', secret: 'nope-0123456789abcdef0123456789abc' }, new Agent())
  const denied = await request(base() + '/v2/x', { dispatcher: wrong })
  t.equal(denied.statusCode, 401)
  t.same(await denied.body.json(), { code: 'INVALID_SIGNATURE' })
})
