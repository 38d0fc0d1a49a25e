// How the gateway relays an upstream's answer (src/proxy/forward.ts Relay): a client that leaves before
// or during the answer ends the exchange with the upstream and gives its connection back; a client that
// reads slowly slows the upstream down instead of filling the gateway's memory; 1xx answers, HEAD and
// keep-alive behave. The upstream allows one connection, so a connection that was never given back shows
// as the next request waiting until its timeout.
import t from 'tap'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, until, type RunningGateway } from './harness.js'

const BIG = 64 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 0x61)

let upstream: Server
let gw: RunningGateway
/** Paths whose response the upstream saw closed before it ended it. */
const cut: string[] = []
/** Bytes of /big the upstream has handed to its socket so far. */
let bigWritten = 0

function events(res: ServerResponse, path: string): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  let n = 0
  const timer = setInterval(() => res.write(`data: ${n++}\n\n`), 20)
  res.on('close', () => {
    clearInterval(timer)
    if (!res.writableEnded) cut.push(path)
  })
}

/** 64 MB, written as fast as the gateway takes it (each write waits for 'drain' when the socket is full). */
function big(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG })
  bigWritten = 0
  const more = () => {
    while (bigWritten < BIG) {
      bigWritten += CHUNK.length
      const ok = res.write(CHUNK)
      if (bigWritten >= BIG) return res.end()
      if (!ok) return res.once('drain', more)
    }
  }
  res.on('close', () => {
    if (!res.writableEnded) cut.push('/pub/big')
  })
  more()
}

t.before(async () => {
  upstream = createServer((req, res) => {
    const path = req.url!
    if (path !== '/pub/silent') req.resume()
    if (path === '/pub/reset-early') return void req.socket.resetAndDestroy()
    if (path === '/pub/silent') return void req.pause() // reads nothing, answers nothing
    if (path === '/pub/late-events') setTimeout(() => events(res, path), 300)
    else if (path === '/pub/events') events(res, path)
    else if (path === '/pub/big') big(res)
    else if (path === '/pub/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok')
    } else res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end(req.method === 'HEAD' ? undefined : 'ok')
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const port = (upstream.address() as AddressInfo).port
  gw = await startGateway(`version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 16mb }
upstreams:
  be: { url: "http://127.0.0.1:${port}", timeout: 2s, connections: 1 }
routes:
  - { prefix: /pub/, upstream: be, public: true }
`)
})

t.teardown(async () => {
  await gw?.stop()
  upstream?.closeAllConnections()
  await new Promise<void>((r) => upstream?.close(() => r()))
})

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(gw.port, '127.0.0.1', () => resolve(s))
    s.on('error', reject)
  })
}

/** Reads from `s` until `want` matches what came (or `ms` pass); the text so far. */
function readUntil(s: Socket, want: RegExp, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const done = () => {
      clearTimeout(timer)
      s.off('data', onData)
      s.off('close', done)
      resolve(text)
    }
    const onData = (d: Buffer) => {
      text += d.toString('latin1')
      if (want.test(text)) done()
    }
    const timer = setTimeout(done, ms)
    s.on('data', onData)
    s.on('close', done)
  })
}

/** A plain GET through the gateway on a connection of its own: the status line. */
async function statusOf(path: string): Promise<string> {
  const s = await open()
  s.write(`GET ${path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n`)
  const text = await readUntil(s, /\r\n\r\n/, 4000)
  s.destroy()
  return text.split('\r\n')[0] ?? ''
}

t.test('a client that leaves before the upstream answers: the exchange ends when the answer comes, the connection is given back', async (t) => {
  cut.length = 0
  const s = await open()
  s.write('GET /pub/late-events HTTP/1.1\r\nhost: gw\r\n\r\n')
  await sleep(50)
  s.destroy()
  t.ok(await until(() => cut.includes('/pub/late-events'), 3000), 'the upstream saw its answer cut off')
  t.equal(await statusOf('/pub/ok'), 'HTTP/1.1 200 OK', 'the one upstream connection serves the next request')
})

t.test('a client that leaves mid-stream: the upstream sees its answer cut off, the connection is given back', async (t) => {
  cut.length = 0
  const s = await open()
  s.write('GET /pub/events HTTP/1.1\r\nhost: gw\r\n\r\n')
  t.match(await readUntil(s, /data: 1\n\n/), /^HTTP\/1\.1 200 OK[\s\S]*data: 0\n\n/)
  s.destroy()
  t.ok(await until(() => cut.includes('/pub/events'), 3000), 'the upstream saw its answer cut off')
  t.equal(await statusOf('/pub/ok'), 'HTTP/1.1 200 OK')
})

t.test('a client that stops reading holds the upstream back: the gateway does not buffer the rest of a 64 MB answer', async (t) => {
  cut.length = 0
  const s = await open()
  s.write('GET /pub/big HTTP/1.1\r\nhost: gw\r\n\r\n')
  let received = 0
  s.on('data', (d: Buffer) => (received += d.length))
  t.ok(await until(() => received > 0, 3000), 'the answer starts')
  s.pause()
  // Settle: what the sockets between client and upstream can hold fills up, then the upstream must stop.
  await sleep(800)
  const heldBack = bigWritten
  await sleep(400)
  t.equal(bigWritten, heldBack, 'the upstream writes nothing more while the client does not read')
  t.ok(heldBack < BIG / 2, `the upstream got only ${(heldBack / 1048576).toFixed(1)} MB of 64 out`)
  s.resume()
  t.ok(await until(() => received >= BIG, 20_000), 'the whole answer arrives once the client reads')
  s.destroy()
  t.same(cut, [], 'the upstream finished its answer')
})

t.test('a 103 Early Hints before the answer: the client gets the 200 and its body', async (t) => {
  const s = await open()
  s.write('GET /pub/hints HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n')
  const text = await readUntil(s, /\r\n\r\nok$/)
  s.destroy()
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(text, /\r\n\r\nok$/)
})

t.test('HEAD gets the headers without a body, and the connection carries the next request', async (t) => {
  const s = await open()
  s.write('HEAD /pub/ok HTTP/1.1\r\nhost: gw\r\n\r\n')
  const head = await readUntil(s, /\r\n\r\n/)
  t.match(head, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(head, /\r\ncontent-length: 2\r\n/i)
  s.write('GET /pub/ok HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n')
  const next = await readUntil(s, /\r\n\r\nok$/)
  s.destroy()
  t.match(next, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, 'no body bytes were left on the connection before the next answer')
})

t.test('an upload still coming when the upstream fails: the client gets the 502 or 504, not a cut connection', async (t) => {
  // 8 MB announced, 64 KB sent: the body is streamed to the upstream as it comes.
  for (const [path, status, code] of [['/pub/reset-early', 502, 'UPSTREAM_UNAVAILABLE'], ['/pub/silent', 504, 'UPSTREAM_TIMEOUT']] as const) {
    const s = await open()
    s.write(`POST ${path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/octet-stream\r\ncontent-length: ${8 * 1024 * 1024}\r\n\r\n`)
    s.write(Buffer.alloc(64 * 1024, 0x62))
    const text = await readUntil(s, /"requestId":"[^"]+"\}/, 6000)
    s.destroy()
    t.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${path}: ${status} reached the client`)
    t.match(text, new RegExp(`"code":"${code}"`))
    const line = await gw.waitForLog((l) => l.msg === 'auth' && l.path === path)
    t.match(line, { event: 'allow', status, reason: code }, `${path}: the audit line says what the client got`)
  }
  t.equal(await statusOf('/pub/ok'), 'HTTP/1.1 200 OK', 'the connection slot came back')
})

t.test('an Upgrade on a route without websocket: true is answered as a plain request, however large the answer', async (t) => {
  const s = await open()
  s.write('GET /pub/big HTTP/1.1\r\nhost: gw\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n')
  let received = 0
  s.on('data', (d: Buffer) => (received += d.length))
  t.ok(await until(() => received > BIG, 20_000), `the whole 64 MB answer arrived (${(received / 1048576).toFixed(1)} MB)`)
  s.destroy()
  t.equal(await statusOf('/pub/ok'), 'HTTP/1.1 200 OK', 'and its connection slot came back')
})
