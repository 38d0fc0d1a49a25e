// The assembled pipeline (src/pipeline.ts) on a real node:http server over loopback, with a real
// compiled gateway and memory store, and upstream pools replaced by a recorder that answers 200: what is
// refused is never forwarded, every request ends in exactly one audit line, and an `enforce: report`
// route forwards what it would have refused (DESIGN §3, §3.2).
import t from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import { handleClientError, handleRequest, handleSocketRequest, refusedRequestLine } from '../../../src/pipeline.js'
import type { ForwardRequest, UpstreamPools } from '../../../src/proxy/forward.js'
import { StoreUnavailableError } from '../../../src/state/index.js'
import { rawRequest } from '../../e2e/raw-http.js'
import { JOIN_PATH, OPS_TOKEN, READER_TOKEN, testRuntime, type TestRuntime } from '../steps/fakes.js'

interface Harness {
  rt: TestRuntime
  port: number
  forwarded: ForwardRequest[]
}

/** A gateway server wired as src/server.ts wires it; `upstream` answers what the pools were asked to forward. */
async function start(t: { teardown(fn: () => void): void }, upstream?: (f: ForwardRequest, res: ServerResponse, onHeaders: (s: number, h: string[]) => void) => Promise<{ started: boolean }>): Promise<Harness> {
  const rt = await testRuntime()
  const forwarded: ForwardRequest[] = []
  rt.pools = {
    async forward(f: ForwardRequest, res: ServerResponse, onHeaders: (s: number, h: string[]) => void) {
      forwarded.push(f)
      if (upstream) return upstream(f, res, onHeaders)
      const out = ['content-type', 'text/plain', 'content-length', '2']
      onHeaders(200, out)
      res.writeHead(200, out)
      res.end('ok')
      return { started: true }
    },
  } as unknown as UpstreamPools
  const server = createServer({ requireHostHeader: false })
  server.on('request', (req, res) => void handleRequest(rt, req, res))
  server.on('checkExpectation', (req, res) => void handleRequest(rt, req, res))
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void handleSocketRequest(rt, req, socket, head))
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => void handleSocketRequest(rt, req, socket, head))
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => handleClientError(rt, err, socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { rt, port: (server.address() as { port: number }).port, forwarded }
}

/** Everything the server sends on one connection until it closes (bounded). */
function readAll(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes))
    const chunks: Buffer[] = []
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    const timer = setTimeout(done, 10_000)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', done)
    socket.on('error', done)
  })
}

const req = (lines: string[]) => [...lines, '', ''].join('\r\n')

t.test('enforce: report forwards a request it would refuse, without identity headers, and logs report', async (t) => {
  const h = await start(t)
  const r = await rawRequest(h.port, req(['GET /legacy/a?q=1 HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${READER_TOKEN}`, 'X-Auth-Identity: forged', 'Connection: close']))
  t.equal(r.status, 200)
  t.equal(h.forwarded.length, 1)
  const fwd = h.forwarded[0]!
  t.equal(fwd.target, '/legacy/a?q=1')
  t.equal(fwd.headers['x-auth-identity'], undefined, 'no identity headers for a request that would be refused, and the forged one dropped')
  t.equal(fwd.headers['authorization'], undefined, 'credentials stripped as on any route')
  t.equal(h.rt.audit.records.length, 1)
  t.match(h.rt.audit.records[0]!.record, { event: 'report', reason: 'FORBIDDEN', status: 200, identity: 'reader', route: '/legacy/' })
  t.equal(r.headers['x-request-id'], h.rt.audit.records[0]!.record.reqId)

  const ok = await rawRequest(h.port, req(['GET /legacy/b HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']))
  t.equal(ok.status, 200)
  t.equal(h.forwarded[1]!.headers['x-auth-identity'], 'ops', 'a request that would be allowed gets its identity headers')
  t.match(h.rt.audit.records[1]!.record, { event: 'allow', reason: null, identity: 'ops' })
})

t.test('an enforced route: a refusal is answered and never forwarded; one audit line each', async (t) => {
  const h = await start(t)
  const cases: Array<[string, number, string]> = [
    [req(['GET /admin HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${READER_TOKEN}`, 'Connection: close']), 403, 'FORBIDDEN'],
    [req(['GET /admin HTTP/1.1', 'Host: gw.test', 'Connection: close']), 401, 'MISSING_CREDENTIALS'],
    [req(['GET /%61dmin HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']), 400, 'BAD_PATH'],
    [req(['GET /nowhere HTTP/1.1', 'Host: gw.test', 'Connection: close']), 404, 'NO_ROUTE'],
    [req([`GET ${JOIN_PATH} HTTP/1.1`, 'Host: gw.test', 'Connection: close']), 405, 'METHOD_NOT_ALLOWED'],
    [req([`POST ${JOIN_PATH} HTTP/1.1`, 'Host: gw.test', 'Content-Length: 0', 'Connection: close']), 401, 'MISSING_CREDENTIALS'],
    [req(['POST /admin HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Content-Length: 5000', 'Connection: close']), 413, 'BODY_TOO_LARGE'],
    [req(['GET /admin HTTP/1.1', 'Host: gw.test', 'Expect: 200-ok', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']), 400, 'BAD_REQUEST'],
  ]
  for (const [bytes, status, code] of cases) {
    const before = h.rt.audit.records.length
    const r = await rawRequest(h.port, bytes)
    const line = bytes.split('\r\n')[0]
    t.equal(r.status, status, line)
    t.match(r.json, { code, requestId: r.headers['x-request-id'] }, line)
    t.equal(h.rt.audit.records.length, before + 1, `${line}: one audit line`)
  }
  t.equal(h.forwarded.length, 0, 'nothing forwarded')
  const join = h.rt.audit.records.filter((r) => r.record.route === JOIN_PATH)
  t.equal(join.length, 2, 'the join path went to the join route, not to the public prefix route covering it')
})

t.test('after a response sent with connection: close, a pipelined request is never decided', async (t) => {
  const h = await start(t)
  const text = await readAll(h.port, req(['POST /admin HTTP/1.1', 'Host: gw.test', 'Content-Length: 5000']) + req(['GET /health HTTP/1.1', 'Host: gw.test']))
  t.equal(text.split('HTTP/1.1 ').length - 1, 1, 'one response')
  t.match(text, /^HTTP\/1\.1 413 /)
  t.match(text, /connection: close/i)
  t.equal(h.rt.audit.records.length, 1)
  t.equal(h.forwarded.length, 0)
})

t.test('the socket path: CONNECT, an upgrade with a body, an upgrade to the join path', async (t) => {
  const h = await start(t)
  const cases: Array<[string, number, string]> = [
    [req(['CONNECT 127.0.0.1:22 HTTP/1.1', 'Host: 127.0.0.1:22']), 400, 'BAD_REQUEST'],
    [req(['GET /admin HTTP/1.1', 'Host: gw.test', 'Connection: upgrade', 'Upgrade: websocket', 'Content-Length: 3', `Authorization: Bearer ${OPS_TOKEN}`]) + 'abc', 400, 'BAD_REQUEST'],
    [req([`GET ${JOIN_PATH} HTTP/1.1`, 'Host: gw.test', 'Connection: upgrade', 'Upgrade: websocket']), 405, 'METHOD_NOT_ALLOWED'],
    [req(['GET /admin HTTP/1.1', 'Host: gw.test', 'Connection: upgrade', 'Upgrade: websocket']), 401, 'MISSING_CREDENTIALS'],
  ]
  for (const [bytes, status, code] of cases) {
    const before = h.rt.audit.records.length
    const text = await readAll(h.port, bytes)
    const line = bytes.split('\r\n')[0]
    t.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), line)
    t.match(text, new RegExp(`"code":"${code}"`), line)
    t.match(text, /\r\nconnection: close\r\n/, `${line}: closes`)
    t.equal(h.rt.audit.records.length, before + 1, `${line}: one audit line`)
  }
  t.equal(h.forwarded.length, 0)
})

t.test('a target the HTTP parser refuses gets the BAD_PATH JSON body and one audit line', async (t) => {
  const h = await start(t)
  const text = await readAll(h.port, 'GET /a\x01b HTTP/1.1\r\nHost: gw.test\r\n\r\n')
  t.match(text, /^HTTP\/1\.1 400 /)
  t.match(text, /"code":"BAD_PATH"/)
  t.equal(h.rt.audit.records.length, 1)
  t.match(h.rt.audit.records[0]!.record, { event: 'deny', reason: 'BAD_PATH', status: 400, route: null, identity: null })
})

t.test('a failure inside the gateway is 500 INTERNAL with the request id, its stack logged under it', async (t) => {
  const h = await start(t, async () => {
    throw new RangeError('pool exploded')
  })
  const r = await rawRequest(h.port, req(['GET /health HTTP/1.1', 'Host: gw.test', 'Connection: close']))
  t.equal(r.status, 500)
  t.match(r.json, { code: 'INTERNAL', requestId: r.headers['x-request-id'] })
  t.notMatch(r.body.toString(), 'pool exploded')
  t.equal(h.rt.audit.records.length, 1)
  t.match(h.rt.audit.records[0]!.record, { status: 500, reason: 'INTERNAL', reqId: r.headers['x-request-id'] })
  const errors = h.rt.logLines().filter((l) => l['level'] === 50)
  t.equal(errors.length, 1)
  t.match(errors[0], { reqId: r.headers['x-request-id'], err: { stack: /RangeError: pool exploded/ } })
})

t.test('refusedRequestLine: method and path as far as the parser got; unknown methods are not labels', async (t) => {
  t.same(refusedRequestLine(Buffer.from('GET /a\x01b?x=1 HTTP/1.1\r\nHost: x\r\n')), { method: 'GET', path: '/a\x01b' })
  t.same(refusedRequestLine(Buffer.from('POST /p')), { method: 'POST', path: '/p' })
  t.same(refusedRequestLine(Buffer.from('BREW /pot HTTP/1.1\r\n')), { method: null, path: '/pot' })
  t.same(refusedRequestLine(Buffer.from('\x16\x03\x01 binary')), { method: null, path: null })
  t.same(refusedRequestLine(undefined), { method: null, path: null })
  t.same(refusedRequestLine('GET / HTTP/1.1'), { method: null, path: null }, 'only a Buffer is read')
})

t.test('an upgrade on a route without websocket: true is answered as a plain request, its Upgrade dropped', async (t) => {
  const h = await start(t)
  const text = await readAll(h.port, req(['GET /admin HTTP/1.1', 'Host: gw.test', 'Connection: upgrade', 'Upgrade: websocket', `Authorization: Bearer ${OPS_TOKEN}`]))
  t.match(text, /^HTTP\/1\.1 200 /)
  t.equal(h.forwarded.length, 1)
  const headers = h.forwarded[0]!.headers
  t.equal(headers['upgrade'], undefined)
  t.notMatch(String(headers['connection'] ?? ''), /upgrade/i)
  t.equal(headers['x-auth-identity'], 'ops')
  t.match(h.rt.audit.records[0]!.record, { event: 'allow', status: 200, identity: 'ops' })
})

t.test('the store unreachable: 503 STATE_UNAVAILABLE on an enforced route; forwarded and reported on a report-only one', async (t) => {
  const h = await start(t)
  const unreachable = () => Promise.reject(new StoreUnavailableError('test: store down', 'unreachable'))
  h.rt.state = { ...h.rt.state, limits: { ...h.rt.state.limits, peek: unreachable, hit: unreachable } }
  const r = await rawRequest(h.port, req(['GET /admin HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']))
  t.equal(r.status, 503)
  t.match(r.json, { code: 'STATE_UNAVAILABLE' })
  t.equal(h.forwarded.length, 0)
  t.match(h.rt.audit.records[0]!.record, { event: 'deny', status: 503, reason: 'STATE_UNAVAILABLE' })

  const rep = await rawRequest(h.port, req(['GET /legacy/q HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']))
  t.equal(rep.status, 200)
  t.equal(h.forwarded.length, 1)
  t.equal(h.forwarded[0]!.headers['x-auth-identity'], undefined, 'not known to be allowed: no identity headers')
  t.match(h.rt.audit.records[1]!.record, { event: 'report', status: 200, reason: 'STATE_UNAVAILABLE' })
})

t.test('a body that breaks off while the pipeline reads it: 400 BAD_REQUEST from its own exchange, one audit line', async (t) => {
  const h = await start(t)
  // The join route reads the body for its signature check once the signature headers are present.
  const head = req([`POST ${JOIN_PATH} HTTP/1.1`, 'Host: gw.test', 'Signature-Input: sig1=("@method");keyid="node-1";created=1', 'Signature: sig1=:AAAA:', 'Transfer-Encoding: chunked'])
  const text = await readAll(h.port, head + '5\r\nhello\r\nzz\r\n')
  t.match(text, /^HTTP\/1\.1 400 /)
  t.equal(text.split('HTTP/1.1 ').length - 1, 1, 'one response')
  t.match(text, /"code":"BAD_REQUEST"/)
  t.equal(h.rt.audit.records.length, 1)
  t.match(h.rt.audit.records[0]!.record, { event: 'deny', status: 400, reason: 'BAD_REQUEST', route: JOIN_PATH, method: 'POST', path: JOIN_PATH })
  t.equal(h.forwarded.length, 0)
})

t.test('a request the parser refuses after a keep-alive response gets its own answer and audit line', async (t) => {
  const h = await start(t)
  const first = connect(h.port, '127.0.0.1')
  const chunks: Buffer[] = []
  first.on('data', (c: Buffer) => chunks.push(c))
  const closed = once(first, 'close')
  first.write(req(['GET /health HTTP/1.1', 'Host: gw.test']))
  // Bounded: the 200 arrives, then the malformed request goes on the same connection.
  for (let i = 0; i < 200 && !Buffer.concat(chunks).toString('latin1').includes('\r\n\r\nok'); i++) await new Promise((r) => setTimeout(r, 10))
  first.write('GET /x\x7fy HTTP/1.1\r\nHost: gw.test\r\n\r\n')
  await closed
  const text = Buffer.concat(chunks).toString('latin1')
  t.match(text, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 400 [\s\S]*"code":"BAD_PATH"/)
  t.equal(h.rt.audit.records.length, 2)
  t.match(h.rt.audit.records[1]!.record, { event: 'deny', status: 400, reason: 'BAD_PATH', path: '/x\x7fy' })
})

t.test(
  'a malformed request pipelined in the same packet behind a valid one: the valid one is not logged as BAD_PATH, the malformed one has its audit line',
  async (t) => {
    const h = await start(t)
    await readAll(h.port, req(['GET /health HTTP/1.1', 'Host: gw.test']) + 'GET /x\x7fy HTTP/1.1\r\nHost: gw.test\r\n\r\n')
    const records = h.rt.audit.records.map((r) => r.record)
    t.notOk(records.some((r) => r.path === '/health' && r.reason === 'BAD_PATH'), 'the valid request is not logged as a bad path')
    t.ok(records.some((r) => r.path === '/x\x7fy' && r.reason === 'BAD_PATH'), 'the malformed request has its own audit line')
  },
)

t.test(
  'report-only 401s do not count against authFailures: they neither lock the address out of enforced routes nor hide the real reason',
  async (t) => {
    const h = await start(t)
    for (let i = 0; i < 3; i++) {
      const r = await rawRequest(h.port, req(['GET /legacy/x HTTP/1.1', 'Host: gw.test', 'Connection: close']))
      t.equal(r.status, 200, 'report-only: forwarded')
    }
    t.same(h.rt.audit.records.map((r) => r.record.reason), ['MISSING_CREDENTIALS', 'MISSING_CREDENTIALS', 'MISSING_CREDENTIALS'], 'the report keeps the real reason')
    const ok = await rawRequest(h.port, req(['GET /admin HTTP/1.1', 'Host: gw.test', `Authorization: Bearer ${OPS_TOKEN}`, 'Connection: close']))
    t.equal(ok.status, 200, 'a valid credential on an enforced route is not throttled by report-only traffic')
  },
)

t.test('a body that breaks off after its request was already answered: the connection closes, no second answer or audit line', async (t) => {
  const h = await start(t)
  // No credential: 401 at once, without reading the body; the body's framing then breaks. That failure
  // belongs to the request already answered and audited — it is not a request of its own.
  const text = await readAll(h.port, req(['POST /admin HTTP/1.1', 'Host: gw.test', 'Transfer-Encoding: chunked']) + '5\r\nhello\r\nzz\r\n')
  t.match(text, /^HTTP\/1\.1 401 /)
  t.equal(text.split('HTTP/1.1 ').length - 1, 1, 'one response')
  t.equal(h.rt.audit.records.length, 1, 'one audit line')
  t.match(h.rt.audit.records[0]!.record, { status: 401, reason: 'MISSING_CREDENTIALS', method: 'POST', path: '/admin' })
  t.equal(h.forwarded.length, 0)
})
