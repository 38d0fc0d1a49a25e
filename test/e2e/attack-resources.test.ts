// Resource bounds (DESIGN §2 server.requestTimeout / bufferLimit, §3 step 0): slow headers and slow
// bodies are cut at requestTimeout with 408 REQUEST_TIMEOUT and a closed connection; 1000 concurrent
// slow bodies on a route that reads bodies cannot hold more than bufferLimit (503 OVERLOADED beyond),
// so the gateway's RSS stays within bufferLimit plus a stated overhead. Bounds are generous on purpose.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, testSecret, type RunningGateway } from './harness.js'
import { exchange, parseResponses, startRawBackend, type RawBackend } from './attack-backend.js'

const KEY7 = testSecret('resKey7')
const MB = 1024 * 1024
/** bufferLimit of the memory test, and what the process may hold beyond it: 1000 sockets, parsers, buffers in flight. */
const BUFFER_LIMIT_MB = 32
const OVERHEAD_MB = 96
const CONNECTIONS = 1000

let be: RawBackend
let quick: RunningGateway
let roomy: RunningGateway

const config = (backend: string, server: string) => `version: 1
server:
  listen: 127.0.0.1:0
${server}
upstreams:
  raw: { url: "${backend}", timeout: 30s }
schemes:
  signed:
    type: rfc9421
    window: 60s
    keys: { worker-7: "\${env:KEY7}" }
    roles: [worker]
defaults:
  authFailures: { max: 1000000, window: 1m }
routes:
  - { prefix: /pub/, upstream: raw, public: true }
  - { prefix: /signed/, upstream: raw, auth: [signed] }
`

t.before(async () => {
  be = await startRawBackend()
  quick = await startGateway(config(be.url, '  bodyLimit: 64kb\n  requestTimeout: 1s'), { KEY7 }, 60_000)
  roomy = await startGateway(config(be.url, `  bodyLimit: 1mb\n  bufferLimit: ${BUFFER_LIMIT_MB}mb\n  requestTimeout: 60s`), { KEY7 }, 60_000)
})
t.teardown(async () => {
  await quick?.stop()
  await roomy?.stop()
  await be?.close()
})

const SIGNED_HEADERS = 'Signature-Input: sig1=("@method" "@authority" "@path" "@query");keyid="worker-7";created=1;nonce="n"\r\nSignature: sig1=:AAAA:\r\n'

/** Writes `parts` one by one, `gapMs` apart, until the gateway closes; resolves with what it answered. */
function trickle(port: number, parts: string[], gapMs: number) {
  return exchange(port, parts, { gapMs, timeoutMs: 12_000 })
}

t.test('slow headers are cut at requestTimeout: 408 REQUEST_TIMEOUT, connection closed, nothing forwarded', async (t) => {
  const before = be.requests.length
  // The last header line and the blank line would come after 8 s: far beyond the 1 s requestTimeout.
  const parts = ['GET /pub/slow-headers HTTP/1.1\r\nHost: gw.test\r\n', ...Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: a\r\n`), '\r\n']
  const r = await trickle(quick.port, parts, 200)
  t.equal(r.responses[0]?.status, 408, '408')
  t.match(r.responses[0]?.json, { code: 'REQUEST_TIMEOUT', requestId: String }, 'our JSON body')
  t.ok(r.closed, 'the connection is closed')
  t.equal(be.requests.length, before, 'nothing forwarded')
})

t.test('a slow body on a route that reads it (rfc9421) is cut at requestTimeout: 408, closed, nothing forwarded', async (t) => {
  const before = be.requests.length
  const head = `POST /signed/slow-body HTTP/1.1\r\nHost: gw.test\r\n${SIGNED_HEADERS}Content-Length: 40\r\n\r\n`
  const r = await trickle(quick.port, [head, ...Array.from({ length: 40 }, () => 'x')], 200)
  t.equal(r.responses[0]?.status, 408, '408')
  t.match(r.responses[0]?.json, { code: 'REQUEST_TIMEOUT' }, 'our JSON body')
  t.ok(r.closed, 'the connection is closed')
  t.equal(be.requests.length, before, 'nothing forwarded')
})

t.test('a slow streamed body on a public route is cut at requestTimeout too: 408, closed, the upstream request abandoned', async (t) => {
  const head = `POST /pub/slow-stream HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 40\r\n\r\n`
  const r = await trickle(quick.port, [head, ...Array.from({ length: 40 }, () => 'x')], 200)
  t.equal(r.responses[0]?.status, 408, '408')
  t.ok(r.closed, 'the connection is closed')
  await sleep(200)
  t.notOk(be.requests.some((q) => q.target === '/pub/slow-stream'), 'the backend never received it as a complete request')
})

/** Resident set of a process in bytes (Linux /proc). */
function rss(pid: number): number {
  const m = /VmRSS:\s+([0-9]+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

t.test(`${CONNECTIONS} concurrent slow bodies: RSS stays within bufferLimit (${BUFFER_LIMIT_MB} MB) + ${OVERHEAD_MB} MB; beyond it 503 OVERLOADED`, { skip: process.platform !== 'linux' ? 'reads /proc' : false }, async (t) => {
  const pid = roomy.child.pid!
  for (let i = 0; i < 20; i++) await exchange(roomy.port, `GET /pub/warm-${i} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n`, { expect: 1 })
  await sleep(300)
  const baseline = rss(pid)
  let peak = baseline
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rss(pid))
    } catch {
      // the process is gone; the test fails elsewhere
    }
  }, 50)

  const sockets: Socket[] = []
  const answers: Buffer[] = []
  const head = `POST /signed/hold HTTP/1.1\r\nHost: gw.test\r\n${SIGNED_HEADERS}Content-Length: ${MB - 1}\r\n\r\n`
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  try {
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = connect(roomy.port, '127.0.0.1')
      const idx = answers.push(Buffer.alloc(0)) - 1
      s.on('data', (d: Buffer) => (answers[idx] = Buffer.concat([answers[idx]!, d])))
      s.on('error', () => undefined)
      s.write(head)
      sockets.push(s)
      if (i % 100 === 99) await sleep(50)
    }
    // Four rounds of 64 KiB on every connection: 256 MiB offered in all, none of it complete.
    for (let round = 0; round < 4; round++) {
      for (const s of sockets) if (!s.destroyed) s.write(chunk)
      await sleep(400)
    }
    // Until every byte has left this process and the gateway's RSS has stopped growing (bounded).
    let last = 0
    for (let i = 0, still = 0; i < 100 && still < 5; i++) {
      await sleep(200)
      const flushed = sockets.every((s) => s.destroyed || s.writableLength === 0)
      still = flushed && peak <= last ? still + 1 : 0
      last = peak
    }
  } finally {
    clearInterval(sampler)
    peak = Math.max(peak, rss(pid))
    for (const s of sockets) s.destroy()
  }
  const grownMb = (peak - baseline) / MB
  const overloaded = answers.map((a) => parseResponses(a)[0]).filter((r) => r?.status === 503 && r.json?.code === 'OVERLOADED').length
  t.comment(`RSS baseline ${(baseline / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB, grown ${grownMb.toFixed(1)} MB under ${CONNECTIONS} slow 1 MiB bodies (bufferLimit ${BUFFER_LIMIT_MB} MB); ${overloaded} answered 503 OVERLOADED`)
  t.ok(grownMb <= BUFFER_LIMIT_MB + OVERHEAD_MB, `RSS grew ${grownMb.toFixed(1)} MB ≤ ${BUFFER_LIMIT_MB} + ${OVERHEAD_MB} MB`)
  t.ok(overloaded > 0, 'bodies beyond bufferLimit are refused with 503 OVERLOADED')
  const health = await exchange(roomy.port, 'GET /pub/after HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n', { expect: 1, timeoutMs: 10_000 })
  t.equal(health.responses[0]?.status, 200, 'the gateway still serves afterwards')
})
