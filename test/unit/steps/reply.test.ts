// The reply writers (src/reply.ts): through a ServerResponse, never a write after the headers went out
// (the connection is cut instead); raw on a socket, one complete JSON response with connection: close,
// after which the socket is marked closing and nothing more is written.
import t from 'tap'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { createServer, connect, type Socket } from 'node:net'
import { isClosing, markClosing, responseReply, socketReply } from '../../../src/reply.js'

/** A ServerResponse as far as responseReply uses it, recording what it was asked to do. */
function fakeResponse(headersSent = false) {
  const socket = {} as Socket
  const calls: string[] = []
  const res = {
    headersSent,
    socket,
    head: undefined as undefined | { status: number; headers: Record<string, unknown> },
    body: undefined as undefined | string,
    writeHead(status: number, headers: Record<string, unknown>) {
      calls.push('writeHead')
      res.head = { status, headers }
      res.headersSent = true
      return res
    },
    end(body: string) {
      calls.push('end')
      res.body = body
      return res
    },
    destroy() {
      calls.push('destroy')
      return res
    },
  }
  return { res, calls, socket, as: res as unknown as ServerResponse }
}

t.test('responseReply: one JSON answer with content-type and content-length', async (t) => {
  const f = fakeResponse()
  const reply = responseReply(f.as)
  t.equal(reply.started, false)
  const body = JSON.stringify({ error: 'Forbidden – é', code: 'FORBIDDEN', requestId: 'r1' })
  reply.json(403, body, { 'x-request-id': 'r1' }, false)
  t.same(f.calls, ['writeHead', 'end'])
  t.same(f.res.head, { status: 403, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': 'r1' } })
  t.equal(f.res.body, body)
  t.equal(reply.started, true)
  t.equal(isClosing(f.socket), false, 'without close the connection stays usable')
})

t.test('responseReply: close sends connection: close and marks the socket closing', async (t) => {
  const f = fakeResponse()
  responseReply(f.as).json(413, '{}', { 'x-request-id': 'r2' }, true)
  t.equal(f.res.head?.headers['connection'], 'close')
  t.equal(isClosing(f.socket), true)
})

t.test('responseReply: after the headers were sent it destroys instead of writing', async (t) => {
  const f = fakeResponse(true)
  const reply = responseReply(f.as)
  t.equal(reply.started, true)
  reply.json(500, '{}', {}, true)
  t.same(f.calls, ['destroy'], 'no writeHead, no end')
  const g = fakeResponse()
  responseReply(g.as).abort()
  t.same(g.calls, ['destroy'])
})

/** A connected socket pair on loopback: the gateway's side and the client's. */
async function socketPair(): Promise<{ server: Socket; client: Socket; received: () => Promise<string>; close: () => void }> {
  const listener = createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const port = (listener.address() as { port: number }).port
  const accepted = once(listener, 'connection')
  const client = connect(port, '127.0.0.1')
  const [server] = (await accepted) as [Socket]
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  const ended = once(client, 'end')
  return {
    server,
    client,
    received: async () => {
      await ended
      return Buffer.concat(chunks).toString('latin1')
    },
    close: () => {
      client.destroy()
      server.destroy()
      listener.close()
    },
  }
}

t.test('socketReply: one raw JSON response with connection: close; the socket is marked closing and ended', async (t) => {
  const p = await socketPair()
  t.teardown(p.close)
  const reply = socketReply(p.server)
  t.equal(reply.started, false)
  const body = JSON.stringify({ error: 'Bad request – ü', code: 'BAD_REQUEST', requestId: 'r3' })
  reply.json(400, body, { 'x-request-id': 'r3', 'x-multi': ['a', 'b'], skipped: undefined }, false)
  t.equal(reply.started, true)
  t.equal(isClosing(p.server), true, 'marked closing even when close was not asked: the socket has no response object to go on with')
  const text = await p.received()
  const [head, sent] = text.split('\r\n\r\n') as [string, string]
  const lines = head.split('\r\n')
  t.equal(lines[0], 'HTTP/1.1 400 Bad Request')
  t.same(lines.slice(1).sort(), ['connection: close', 'content-length: ' + Buffer.byteLength(body), 'content-type: application/json', 'x-multi: a, b', 'x-request-id: r3'].sort())
  t.equal(Buffer.from(sent, 'latin1').toString('utf8'), body, 'content-length counts bytes, not characters')
})

t.test('socketReply: a second answer, or one on a socket no longer writable, destroys and writes nothing', async (t) => {
  const p = await socketPair()
  t.teardown(p.close)
  const reply = socketReply(p.server)
  reply.json(400, '{}', {}, true)
  reply.json(500, '{"second":true}', {}, true)
  const text = await p.received()
  t.equal(text.split('HTTP/1.1').length - 1, 1, 'exactly one response on the wire')
  t.notMatch(text, 'second')
  t.equal(p.server.destroyed, true)

  const q = await socketPair()
  t.teardown(q.close)
  q.server.end()
  await once(q.client, 'end')
  const late = socketReply(q.server)
  late.json(408, '{}', {}, true)
  t.equal(q.server.destroyed, true, 'not writable: cut')
})

t.test('socketReply: an unknown status still gets a reason phrase; abort destroys', async (t) => {
  const p = await socketPair()
  t.teardown(p.close)
  socketReply(p.server).json(599, '{}', {}, true)
  t.match(await p.received(), /^HTTP\/1\.1 599 Error\r\n/)
  const q = await socketPair()
  t.teardown(q.close)
  socketReply(q.server).abort()
  t.equal(q.server.destroyed, true)
})

t.test('markClosing / isClosing: null-safe, per socket', async (t) => {
  const a = {} as Socket
  const b = {} as Socket
  t.equal(isClosing(null), false)
  markClosing(null)
  markClosing(a)
  t.equal(isClosing(a), true)
  t.equal(isClosing(b), false)
})
