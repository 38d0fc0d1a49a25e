// A request body streamed to the upstream (src/proxy/forward.ts): once the exchange ends, nothing of the
// forward is left hanging on the request — undici leaves its handler's and its body writer's 'error'
// listeners there, which kept every forwarded request's objects from dying young (docs/performance.md) —
// and a client that breaks off a body the upstream no longer reads costs nothing but that request.
import t, { type Test } from 'tap'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { UpstreamPools, type ForwardResult } from '../../../src/proxy/forward.js'
import type { Upstream } from '../../../src/config/compile.js'

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

interface Seen {
  result: ForwardResult
  /** 'error' listeners on the request before the forward, and once it ended. */
  before: number
  after: number
}

/** A gateway stand-in whose every request goes through UpstreamPools.forward to `upstream`. */
async function gateway(t: Test, upstream: Upstream) {
  const pools = new UpstreamPools()
  t.teardown(() => pools.close())
  const seen: Seen[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const before = req.listenerCount('error')
    // A chunked body goes on chunked (undici frames a stream without a length so).
    const headers: Record<string, string> = req.headers['content-length'] === undefined ? {} : { 'content-length': req.headers['content-length'] }
    void pools.forward({ upstream, method: req.method!, target: req.url!, headers, req, bodyLimit: 1 << 20 }, res, () => {}).then((result) => {
      seen.push({ result, before, after: req.listenerCount('error') })
      if (!result.started && !res.headersSent) res.writeHead(502).end()
    })
  })
  const port = await listen(server)
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { port, seen }
}

async function backend(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const server = createServer(handler)
  const port = await listen(server)
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { name: 'be', origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, basePath: '', timeoutMs: 5000, connections: 4 }
}

/** Errors thrown to the process while the test runs (each would have ended the gateway). */
function recordUncaught(t: Test): unknown[] {
  const uncaught: unknown[] = []
  const onUncaught = (err: unknown) => uncaught.push(err)
  process.on('uncaughtException', onUncaught)
  t.teardown(() => process.off('uncaughtException', onUncaught))
  return uncaught
}

function post(port: number, body: string, chunked = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': Buffer.byteLength(body) }
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/up', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('a streamed body: the upstream gets it whole, and no forward listener is left on the request', async (t) => {
  const upstream = await backend(t, (req, res) => {
    let n = 0
    req.on('data', (d: Buffer) => (n += d.length))
    req.on('end', () => res.end(`got ${n}`))
  })
  const gw = await gateway(t, upstream)
  for (let i = 0; i < 3; i++) {
    const r = await post(gw.port, 'x'.repeat(1000 + i))
    t.same(r, { status: 200, body: `got ${1000 + i}` })
  }
  const chunked = await post(gw.port, 'c'.repeat(700), true)
  t.same(chunked, { status: 200, body: 'got 700' }, 'a chunked body too')
  t.equal(gw.seen.length, 4)
  for (const [i, s] of gw.seen.entries()) {
    t.same(s.result, { started: true })
    if (i < 3) t.equal(s.after, s.before, "no 'error' listener of the forward is left on the request once it ended")
    else t.equal(s.after, s.before + 1, 'chunked: only the byte counter\'s own listener, which hands an error on to the counter')
  }
})

t.test('the upstream answers before the body is in, then the client breaks off: that request only', async (t) => {
  const upstream = await backend(t, (_req, res) => res.end('early'))
  const gw = await gateway(t, upstream)
  const uncaught = recordUncaught(t)

  // Sends 1 KB of a body it never finishes (declared 100 KB, or chunked), reads the answer, then resets.
  const brokenOff = (headers: Record<string, string | number>) =>
    new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/up', headers }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => {
          req.destroy()
          resolve(text)
        })
      })
      req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)))
      req.write('y'.repeat(1000))
    })
  const answered = await brokenOff({ 'content-length': 100_000 })
  t.equal(await brokenOff({ 'transfer-encoding': 'chunked' }), 'early', 'chunked')
  t.equal(answered, 'early')
  await new Promise((r) => setTimeout(r, 200))
  t.same(uncaught, [], 'nothing thrown in the process')
  // The pool still serves: the broken-off body did not take its connection with it for good.
  const r = await post(gw.port, 'z'.repeat(10))
  t.same(r, { status: 200, body: 'early' })
})

t.test('the upstream dies mid-response while the body is still coming: the response is cut, nothing thrown', async (t) => {
  // Headers and 3 of 100 body bytes, then the connection reset, while the client's body is unfinished.
  const upstream = await backend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': 100 })
    res.write('abc')
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const gw = await gateway(t, upstream)
  const uncaught = recordUncaught(t)

  for (const headers of [{ 'content-length': 900 }, { 'transfer-encoding': 'chunked' }]) {
    const got = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/up', headers }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('error', () => resolve(`cut after ${JSON.stringify(text)}`))
        res.on('end', () => resolve(`ended after ${JSON.stringify(text)}`))
      })
      req.on('error', () => resolve('cut before the response'))
      req.write('x'.repeat(10))
    })
    t.equal(got, 'cut after "abc"', `${Object.keys(headers)[0]}: the client sees the response cut, as the upstream cut it`)
  }
  await new Promise((r) => setTimeout(r, 300))
  t.same(uncaught.map((e) => String((e as Error).stack ?? e)), [], 'nothing thrown in the process')
})
