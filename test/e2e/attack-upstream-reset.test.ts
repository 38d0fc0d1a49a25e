// An upstream that dies mid-response while the client's body is still coming (it crashed, it was
// restarted, it cut a request it did not want): the client sees its response cut and the gateway goes on
// serving. This once ended the gateway's process — undici's stream handler called a spent callback
// (src/proxy/forward.ts dropLeftoverListeners) — with raw sockets, on a public route and a bearer one.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, testSecret, type RunningGateway } from './harness.js'

const TOKEN = testSecret('resetToken')

let upstream: Server
let gw: RunningGateway

t.before(async () => {
  upstream = createServer((req, res) => {
    req.resume()
    if (req.url!.includes('/cut')) {
      // headers and 3 of 100 body bytes, then the connection is reset
      res.writeHead(200, { 'content-length': 100 })
      res.write('abc')
      setTimeout(() => res.socket?.resetAndDestroy(), 50)
      return
    }
    req.on('end', () => res.end('ok'))
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const port = (upstream.address() as AddressInfo).port
  gw = await startGateway(
    `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 64kb }
upstreams:
  be: { url: "http://127.0.0.1:${port}", timeout: 5s }
identities:
  - { name: ops, roles: [ops], bearer: "\${env:TOKEN}" }
routes:
  - { prefix: /pub/, upstream: be, public: true }
  - { prefix: /api/, upstream: be, auth: [bearer], roles: [ops] }
`,
    { TOKEN },
  )
})

t.teardown(async () => {
  await gw?.stop()
  upstream?.closeAllConnections()
  await new Promise<void>((r) => upstream?.close(() => r()))
})

/** Sends `head` and a piece of the body it announces, reads until the gateway closes or 2 s pass. */
function unfinished(head: string, piece: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(gw.port, '127.0.0.1')
    let text = ''
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(text)
    }
    const timer = setTimeout(done, 2000)
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
    socket.on('close', done)
    socket.on('error', done)
    socket.write(head + piece)
  })
}

t.test('the upstream resets mid-response while the body is still coming: the response is cut, the gateway lives', async (t) => {
  const auth = `authorization: Bearer ${TOKEN}\r\n`
  const cases = [
    ['public, Content-Length', 'POST /pub/cut HTTP/1.1\r\nhost: gw\r\ncontent-length: 5000\r\n\r\n', 'x'.repeat(100)],
    ['public, chunked', 'POST /pub/cut HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n', '64\r\n' + 'x'.repeat(100) + '\r\n'],
    ['bearer, Content-Length', `POST /api/cut HTTP/1.1\r\nhost: gw\r\n${auth}content-length: 5000\r\n\r\n`, 'x'.repeat(100)],
    ['bearer, chunked', `POST /api/cut HTTP/1.1\r\nhost: gw\r\n${auth}transfer-encoding: chunked\r\n\r\n`, '64\r\n' + 'x'.repeat(100) + '\r\n'],
  ] as const
  for (const [name, head, piece] of cases) {
    for (let round = 0; round < 3; round++) {
      const text = await unfinished(head, piece)
      if (round === 0) {
        t.match(text, /^HTTP\/1\.1 200 /, `${name}: the upstream's status reached the client`)
        t.match(text, /\r\n\r\nabc$/, `${name}: then its 3 bytes, and the connection was cut`)
      }
    }
    await sleep(100)
    t.equal(gw.child.exitCode, null, `${name}: the gateway is still running`)
  }
  const after = await unfinished('GET /pub/fine HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n', '')
  t.match(after, /^HTTP\/1\.1 200 [^]*\r\n\r\nok$/, 'and still serves')
  t.notMatch(gw.output(), /TypeError|uncaught/i, 'nothing thrown')
})
