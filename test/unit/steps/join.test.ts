// The join endpoint as a route (compiled at load in src/config/compile.ts), never forwarded, and its last
// step answers with the worker's key — wrapped for the worker's X25519 key, or in clear — or 400 for a
// body it cannot use. The authenticator in front of it is covered by test/unit/auth/join*.test.ts.
import t from 'tap'
import { answerJoin } from '../../../src/steps/join.js'
import { generateX25519, unwrapWorkerKey, type WrappedJoinAnswer } from '../../../src/auth/join-wrap.js'
import { deriveKey } from '../../../src/auth/derive.js'
import { JOIN_PATH, MASTER, exchangeFor, fakeRequest, loadGateway, testRuntime } from './fakes.js'

t.test('the join route: compiled with the config, at the join path, answered locally; none without join:', async (t) => {
  const rt = await testRuntime()
  const route = rt.gateway.join
  t.ok(route, 'there as soon as the config loaded: nothing is built on the request path')
  t.match(route, { id: JOIN_PATH, upstream: null, public: false, roles: null, loopbackAllow: false, websocket: false })
  t.equal(route!.auth.length, 1)
  t.match(route!.challenge, /\S/, 'a 401 names what it accepts')

  const plain = loadGateway(
    `version: 1
server: { listen: 127.0.0.1:0 }
upstreams: { be: { url: "http://127.0.0.1:9" } }
routes:
  - { prefix: /, upstream: be, public: true }
`,
    {},
  )
  t.equal(plain.join, undefined)
})

t.test('answerJoin: a wrapped key only the worker can unwrap; in clear without publicKey', async (t) => {
  const rt = await testRuntime()
  const route = rt.gateway.join!
  const worker = generateX25519()
  const { x } = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  x.body = Buffer.from(JSON.stringify({ keyid: 'node-1', publicKey: worker.publicKey }))
  const wrapped = answerJoin(x, route)
  t.equal('status' in wrapped && wrapped.status, 200)
  const answer = JSON.parse((wrapped as { body: string }).body) as WrappedJoinAnswer
  t.equal(answer.keyid, 'node-1')
  t.notMatch((wrapped as { body: string }).body, deriveKey(MASTER, 'node-1'), 'the key is not in clear')
  t.equal(unwrapWorkerKey(answer, 'node-1', worker.privateKey), deriveKey(MASTER, 'node-1'))

  x.body = Buffer.from(JSON.stringify({ keyid: 'node-2' }))
  const clear = answerJoin(x, route)
  t.same(clear, { status: 200, body: JSON.stringify({ keyid: 'node-2', key: deriveKey(MASTER, 'node-2') }) })
})

t.test('answerJoin: a body it cannot use is 400 BAD_REQUEST with a reason, never a throw', async (t) => {
  const rt = await testRuntime()
  const route = rt.gateway.join!
  const { x } = exchangeFor(rt, fakeRequest({ method: 'POST', url: JOIN_PATH }))
  const bodies: Array<[Buffer | undefined, RegExp]> = [
    [undefined, /JSON/],
    [Buffer.from('not json'), /JSON/],
    [Buffer.from('[1]'), /object/],
    [Buffer.from('{"keyid":"a:b"}'), /keyid/],
    [Buffer.from('{"keyid":""}'), /keyid/],
    [Buffer.from('{"keyid":"n","publicKey":7}'), /publicKey/],
    [Buffer.from('{"keyid":"n","publicKey":"AAAA"}'), /X25519/],
    [Buffer.from(JSON.stringify({ keyid: 'n', publicKey: Buffer.alloc(32).toString('base64url') })), /X25519/],
  ]
  for (const [body, message] of bodies) {
    if (body) x.body = body
    else delete x.body
    t.match(answerJoin(x, route), { code: 'BAD_REQUEST', message }, body?.toString() ?? '(no body)')
  }
})
