// Differential framing test (DESIGN §3 step 0): smuggling shapes sent through raw sockets to the
// gateway in front of a raw recording backend. For each, either the gateway answers 400 with our
// JSON and the backend receives nothing, or the backend receives exactly the well-framed, authorized
// request(s) the shape contains — parsed strictly on the backend side and compared.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, testSecret, type RunningGateway } from './harness.js'
import { exchange, startRawBackend, type RawBackend } from './attack-backend.js'

const TOKEN = testSecret('frameTok')
const KEY7 = testSecret('frameKey')

let be: RawBackend
let gw: RunningGateway

t.before(async () => {
  be = await startRawBackend()
  gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 1kb
upstreams:
  raw: { url: "${be.url}", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN}"
schemes:
  signed:
    type: rfc9421
    window: 60s
    keys: { worker-7: "\${env:KEY7}" }
    roles: [worker]
defaults:
  authFailures: { max: 100000, window: 1m }
routes:
  - { prefix: /pub/, upstream: raw, public: true }
  - { prefix: /auth/, upstream: raw, auth: [bearer] }
  - { prefix: /admin/, upstream: raw, auth: [bearer], roles: [admin] }
  - { prefix: /ws/, upstream: raw, auth: [bearer], websocket: true }
  - { prefix: /signed/, upstream: raw, auth: [signed] }
`,
    { TOKEN, KEY7 },
    60_000,
  )
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

type Want = { method: string; path: string; body?: string }
interface Case {
  name: string
  bytes: string | string[]
  /** refuse: 400 (or `status`) with our JSON `code`, nothing forwarded. forward: exactly `requests` reach the backend. either: one of the two. */
  expect: 'refuse' | 'forward' | 'either'
  requests?: Want[]
  status?: number
  code?: string
  /** The response statuses in order, for pipelined shapes. */
  statuses?: number[]
  /** DESIGN wants an audit line for the refusal. */
  audit?: boolean
}

const auth = `Authorization: Bearer ${TOKEN}\r\n`
const H = 'Host: gw.test\r\n'
const SMUGGLED = `GET /admin/smuggled HTTP/1.1\r\n${H}${auth}\r\n`
const BIG = 'x'.repeat(2048)

function cases(): Case[] {
  let n = 0
  const p = (prefix = '/pub/') => `${prefix}c${++n}`
  const list: Case[] = []
  const add = (c: Omit<Case, 'bytes'> & { bytes: (path: string) => string | string[]; prefix?: string }, path = p(c.prefix)) =>
    list.push({ ...c, bytes: c.bytes(path), requests: c.requests?.map((r) => ({ ...r, path: r.path === '$' ? path : r.path })) })

  // Content-Length and Transfer-Encoding together, or Content-Length twice
  add({ name: 'CL + TE', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}` })
  add({ name: 'TE + CL', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${SMUGGLED}` })
  add({ name: 'duplicate Content-Length, different', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 60\r\n\r\nhello${SMUGGLED}` })
  add({ name: 'duplicate Content-Length, equal', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length list', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 5, 5\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length with an inner space', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 1 5\r\nConnection: close\r\n\r\nhello${SMUGGLED}` })
  add({ name: 'Content-Length with a plus', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: +5\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length negative', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: -1\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length hex', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 0x5\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length with leading zeros', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 005\r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length with surrounding spaces (OWS)', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length:   5  \r\nConnection: close\r\n\r\nhello` })
  add({ name: 'Content-Length too large for a number', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\nConnection: close\r\n\r\nhello` })

  // Transfer-Encoding variants
  add({ name: 'TE: chunked, identity', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE: identity, chunked', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: identity, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE: xchunked', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE: chunked-false', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked-false\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE with a tab before the value', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE in another case', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}transfer-encoding: ChUnKeD\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE twice', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE with a space before the colon', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE with a vertical tab', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding:\x0bchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'TE gzip (not chunked last)', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\nConnection: close\r\n\r\nhello` })

  // chunk-size tricks
  add({ name: 'chunk size overflow', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nFFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk size negative', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n-5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk size 0x-prefixed', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk extension', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1;q="a b"\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk extension hiding a line feed', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk size line ending in a bare LF', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\nhello\r\n0\r\n\r\n` })
  add({ name: 'chunk data longer than its size', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nhello\r\n0\r\n\r\n${SMUGGLED}` })
  add({ name: 'chunk data without its CRLF', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello0\r\n\r\n` })
  add({ name: 'last chunk with a smuggled request as trailer', expect: 'either', requests: [{ method: 'POST', path: '$', body: 'hello' }], bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: a\r\n\r\n` })

  // header-line tricks
  add({ name: 'obs-fold', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\nConnection: close\r\n\r\n` })
  add({ name: 'obs-fold of Transfer-Encoding', expect: 'refuse', bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'bare LF between headers', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-A: a\nConnection: close\r\n\r\n` })
  add({ name: 'bare LF everywhere', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\nHost: gw.test\nConnection: close\n\n` })
  add({ name: 'bare CR between headers', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-A: a\rTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` })
  add({ name: 'bare CR in a value', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-A: a\rb\r\nConnection: close\r\n\r\n` })
  add({ name: 'NUL in a value', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-A: a\x00b\r\nConnection: close\r\n\r\n` })
  add({ name: 'control byte in a value', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-A: a\x01b\r\nConnection: close\r\n\r\n` })
  add({ name: 'DEL in a header name', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}X-\x7fA: a\r\nConnection: close\r\n\r\n` })
  add({ name: 'a header line without a colon', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}Transfer-Encoding chunked\r\nConnection: close\r\n\r\n` })
  add({ name: 'two Host headers', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n` })
  add({ name: 'absolute-form target', expect: 'refuse', code: 'BAD_PATH', bytes: (x) => `GET http://gw.test${x} HTTP/1.1\r\n${H}Connection: close\r\n\r\n` })
  add({ name: 'request line with a bare LF', expect: 'refuse', bytes: (x) => `GET ${x} HTTP/1.1\n${H}Connection: close\r\n\r\n` })
  // Node reads a request line without a version as HTTP/0.9: not HTTP/1 framing, refused.
  add({ name: 'HTTP/0.9 style request line', expect: 'refuse', requests: [{ method: 'GET', path: '$' }], bytes: (x) => `GET ${x}\r\n${H}\r\n` })

  // pipelining
  add({
    name: 'two requests in one packet, the second unauthorized',
    expect: 'forward',
    prefix: '/auth/',
    requests: [{ method: 'GET', path: '$' }],
    statuses: [200, 401],
    bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}${auth}\r\nGET /auth/second-${x.slice(6)} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  })
  add({
    name: 'two requests in one packet, the second forbidden',
    expect: 'forward',
    prefix: '/auth/',
    requests: [{ method: 'GET', path: '$' }],
    statuses: [200, 403],
    bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}${auth}\r\nGET /admin/second-${x.slice(6)} HTTP/1.1\r\n${H}${auth}Connection: close\r\n\r\n`,
  })
  add({
    name: 'a request line inside a Content-Length body is body, not a request',
    expect: 'forward',
    requests: [{ method: 'POST', path: '$', body: SMUGGLED }],
    bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: ${SMUGGLED.length}\r\nConnection: close\r\n\r\n${SMUGGLED}`,
  })
  add({
    name: 'GET with a body, then a second request',
    expect: 'forward',
    requests: [{ method: 'GET', path: '$', body: 'hello' }, { method: 'GET', path: '/pub/after-get-body' }],
    statuses: [200, 200],
    bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /pub/after-get-body HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
  })

  // DESIGN §3 step 0 rules that the current gateway does not all follow yet
  add({ name: 'upgrade with a Content-Length body on a websocket route', expect: 'refuse', prefix: '/ws/', audit: true, bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}` })
  add({ name: 'upgrade with a chunked body on a websocket route', expect: 'refuse', prefix: '/ws/', audit: true, bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'upgrade with a body on an authenticated route without websocket', expect: 'refuse', prefix: '/auth/', audit: true, bytes: (x) => `GET ${x} HTTP/1.1\r\n${H}${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}` })
  add({ name: 'upgrade with a body on a public route', expect: 'refuse', audit: true, bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello` })
  add({ name: 'HTTP/1.0 with Transfer-Encoding', expect: 'refuse', audit: true, bytes: (x) => `POST ${x} HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n` })
  add({ name: 'CONNECT', expect: 'refuse', code: 'BAD_REQUEST', audit: true, bytes: () => `CONNECT 127.0.0.1:${be.port} HTTP/1.1\r\nHost: 127.0.0.1:${be.port}\r\n\r\nGET /pub/through-connect HTTP/1.1\r\n${H}\r\n` })
  add({ name: 'Expect: 200-ok', expect: 'refuse', code: 'BAD_REQUEST', audit: true, bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Expect: 200-ok\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello` })
  add({
    name: 'a request pipelined behind a 413 (Content-Length over bodyLimit) is never read',
    expect: 'refuse',
    status: 413,
    code: 'BODY_TOO_LARGE',
    bytes: (x) => `POST ${x} HTTP/1.1\r\n${H}Content-Length: ${BIG.length}\r\n\r\n${BIG}GET /pub/behind-413-cl HTTP/1.1\r\n${H}\r\n`,
  })
  add({
    name: 'a request pipelined behind a 413 (chunked body over bodyLimit, read for a signature) is never read',
    expect: 'refuse',
    prefix: '/signed/',
    status: 413,
    code: 'BODY_TOO_LARGE',
    bytes: (x) =>
      `POST ${x} HTTP/1.1\r\n${H}Signature-Input: sig1=("@method");keyid="worker-7";created=1;nonce="n"\r\nSignature: sig1=:AAAA:\r\nTransfer-Encoding: chunked\r\n\r\n${BIG.length.toString(16)}\r\n${BIG}\r\n0\r\n\r\nGET /pub/behind-413-chunked HTTP/1.1\r\n${H}\r\n`,
  })
  return list
}

t.test('smuggling shapes: refused with 400 and our JSON, or forwarded exactly as framed', async (t) => {
  for (const c of cases()) {
    await t.test(c.name, async (t) => {
      const beforeRequests = be.requests.length
      const beforeMalformed = be.malformed.length
      const expectResponses = c.statuses?.length ?? 1
      const { responses } = await exchange(gw.port, c.bytes, { expect: expectResponses, timeoutMs: 4000 })
      await sleep(100) // anything the gateway forwards arrives well within this on loopback
      // Only this case's own requests: a late arrival from an earlier case must not be blamed on this one.
      const sent = Array.isArray(c.bytes) ? c.bytes.join('') : c.bytes
      const got = be.requests
        .slice(beforeRequests)
        .filter((r) => new RegExp(r.target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '(?![A-Za-z0-9/_-])').test(sent))
        .map((r) => ({ method: r.method, path: r.target, body: r.body.toString('latin1') }))
      const malformed = be.malformed.slice(beforeMalformed)
      t.same(malformed, [], 'the backend never receives bytes it cannot frame strictly')
      const first = responses[0]
      const refused = first !== undefined && first.status === (c.status ?? 400) && got.length === 0
      const want = (c.requests ?? []).map((r) => ({ method: r.method, path: r.path, body: r.body ?? '' }))
      const forwardedExactly = got.length === want.length && want.every((w, i) => got[i]!.method === w.method && got[i]!.path === w.path && got[i]!.body === w.body)
      if (c.expect === 'refuse' || (c.expect === 'either' && !forwardedExactly)) {
        t.equal(first?.status, c.status ?? 400, `answered ${c.status ?? 400}`)
        t.match(first?.headers['content-type'] ?? '', /^application\/json/, 'our JSON body')
        t.match(first?.json, { code: c.code ?? (c.status === 413 ? 'BODY_TOO_LARGE' : /^BAD_(REQUEST|PATH)$/), requestId: String }, 'with its code and requestId')
        t.same(got, [], 'the backend received nothing')
        t.equal(responses.length, 1, 'exactly one response: nothing after it is read')
        if (c.audit && first?.headers['x-request-id']) {
          const line = await gw.waitForLog((l) => l.msg === 'auth' && l.reqId === first.headers['x-request-id'], 5000).catch(() => undefined)
          t.ok(line, 'an audit line for the refusal')
        } else if (c.audit) t.fail('the refusal carries x-request-id for its audit line')
      } else {
        t.ok(forwardedExactly || (c.expect === 'either' && refused), `the backend received exactly ${JSON.stringify(want)}; got ${JSON.stringify(got)}`)
        if (c.statuses) t.same(responses.map((r) => r.status), c.statuses, 'responses in order')
        else t.equal(first?.status, 200, 'answered by the backend')
      }
    })
  }
})

t.test('the backend saw only strictly framed requests, and never the smuggled ones', async (t) => {
  t.same(be.malformed, [], 'no malformed bytes on any backend connection')
  const paths = be.requests.map((r) => r.target)
  for (const p of ['/admin/smuggled', '/pub/through-connect', '/pub/behind-413-cl', '/pub/behind-413-chunked']) t.notOk(paths.includes(p), `${p} never reached the backend`)
  t.notOk(paths.some((p) => p.startsWith('/auth/second-') || p.startsWith('/admin/second-')), 'no unauthorized pipelined request reached the backend')
})
