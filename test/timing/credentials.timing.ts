// `npm run test:timing` (never in the default run: its name does not end in .test.ts). A credential
// wrong at its first byte must not be distinguishable by time from one wrong at its last: a bearer
// token (digest lookup) and an rfc9421 signature (MAC compare). Welch's t over many interleaved runs,
// in-process against the authenticators (after a control that shows the method does see a real leak)
// and through loopback against a real gateway.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { createBearerAuthenticator } from '../../src/auth/bearer.js'
import { CredentialTable } from '../../src/auth/static-credentials.js'
import { createRfc9421Authenticator } from '../../src/auth/rfc9421.js'
import { signRfc9421 } from '../../src/client/rfc9421.js'
import type { AuthRequest } from '../../src/auth/types.js'
import { startGateway, testSecret } from '../e2e/harness.js'

/** dudect's threshold: |t| above it is evidence of a timing difference. */
const T_LIMIT = 4.5
const SAMPLES = Number(process.env.TIMING_SAMPLES) || 10_000
const BATCH = 20

/** Welch's t statistic of two samples. */
export function welch(a: number[], b: number[]): number {
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length
  const variance = (x: number[], m: number) => x.reduce((s, v) => s + (v - m) ** 2, 0) / (x.length - 1)
  const ma = mean(a)
  const mb = mean(b)
  return (ma - mb) / Math.sqrt(variance(a, ma) / a.length + variance(b, mb) / b.length)
}

/**
 * Times `run(x)` for two inputs in random interleaving, BATCH calls per sample, and returns Welch's t
 * after cropping both classes at the combined 90th percentile (scheduler and GC outliers).
 */
function measure(run: (x: unknown) => unknown, first: unknown, last: unknown, samples = SAMPLES): { t: number; a: number; b: number } {
  const a: number[] = []
  const b: number[] = []
  for (let i = 0; i < 2000; i++) run(i % 2 ? first : last) // warm up the JIT
  for (let i = 0; i < samples * 2; i++) {
    const pickFirst = Math.random() < 0.5
    const input = pickFirst ? first : last
    const start = process.hrtime.bigint()
    for (let k = 0; k < BATCH; k++) run(input)
    const ns = Number(process.hrtime.bigint() - start)
    ;(pickFirst ? a : b).push(ns)
  }
  const cut = [...a, ...b].sort((x, y) => x - y)[Math.floor((a.length + b.length) * 0.9)]!
  const ca = a.filter((v) => v <= cut)
  const cb = b.filter((v) => v <= cut)
  const avg = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length / BATCH
  return { t: welch(ca, cb), a: avg(ca), b: avg(cb) }
}

const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)

t.test('control: a byte-by-byte early-exit comparison is detected (the method has power)', async (t) => {
  const secret = 'S'.repeat(512)
  const leaky = (x: unknown) => {
    const s = x as string
    for (let i = 0; i < secret.length; i++) if (s.charCodeAt(i) !== secret.charCodeAt(i)) return false
    return true
  }
  const r = measure(leaky, flip(secret, 0), flip(secret, secret.length - 1), Math.min(SAMPLES, 5000))
  t.comment(`leaky compare: t = ${r.t.toFixed(1)}, ${r.a.toFixed(0)} ns vs ${r.b.toFixed(0)} ns`)
  t.ok(Math.abs(r.t) > T_LIMIT, `|t| = ${Math.abs(r.t).toFixed(1)} > ${T_LIMIT}`)
})

function fakeRequest(headers: Record<string, string>, rawHeaders: string[] = Object.entries(headers).flat()): AuthRequest {
  const raw = { headers, rawHeaders } as unknown as IncomingMessage
  return { raw, method: 'GET', path: '/pools/1', query: '?x=1', target: '/pools/1?x=1', tls: false, now: 1_700_000_000_000 }
}

t.test('bearer: a token wrong at its first byte takes as long as one wrong at its last', async (t) => {
  const token = 'tok-' + 'A'.repeat(60)
  const table = new CredentialTable()
  table.add(token, { name: 'ops', roles: [] })
  for (let i = 0; i < 50; i++) table.add(`other-${i}-${'x'.repeat(40)}`, { name: `id${i}`, roles: [] })
  const bearer = createBearerAuthenticator(table)
  const first = fakeRequest({ authorization: `Bearer ${flip(token, 4)}` })
  const last = fakeRequest({ authorization: `Bearer ${flip(token, token.length - 1)}` })
  const r = measure((req) => bearer.authenticate(req as AuthRequest), first, last)
  t.comment(`bearer: t = ${r.t.toFixed(2)}, ${r.a.toFixed(0)} ns vs ${r.b.toFixed(0)} ns per call`)
  t.ok(Math.abs(r.t) < T_LIMIT, `|t| = ${Math.abs(r.t).toFixed(2)} < ${T_LIMIT}`)
})

t.test('rfc9421: a signature wrong at its first byte takes as long as one wrong at its last', async (t) => {
  const key = 'k7-0123456789abcdef0123456789abcdef'
  const auth = createRfc9421Authenticator({ name: 'signed', windowMs: 60_000, roles: [], keys: new Map([['worker-7', key]]) })
  const h = signRfc9421({ keyId: 'worker-7', secret: key, method: 'GET', url: 'http://gw.test/pools/1?x=1', created: 1_700_000_000, nonce: 'n-timing' })
  const mac = Buffer.from(/:([^:]+):/.exec(h.signature)![1]!, 'base64')
  const withMac = (m: Buffer) => {
    const headers = { host: 'gw.test', 'signature-input': h['signature-input'], signature: `sig1=:${m.toString('base64')}:` }
    return fakeRequest(headers)
  }
  const firstWrong = Buffer.from(mac)
  firstWrong[0] ^= 1
  const lastWrong = Buffer.from(mac)
  lastWrong[lastWrong.length - 1] ^= 1
  const r = measure((req) => auth.authenticate(req as AuthRequest), withMac(firstWrong), withMac(lastWrong))
  t.comment(`rfc9421: t = ${r.t.toFixed(2)}, ${r.a.toFixed(0)} ns vs ${r.b.toFixed(0)} ns per call`)
  t.ok(Math.abs(r.t) < T_LIMIT, `|t| = ${Math.abs(r.t).toFixed(2)} < ${T_LIMIT}`)
})

/** Round trips on one keep-alive connection: write a request, wait for its whole response. */
function loopbackClient(port: number) {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let buf: Buffer = Buffer.alloc(0)
  let waiting: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    const end = buf.indexOf('\r\n\r\n')
    if (end === -1) return
    const len = Number(/content-length: *([0-9]+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0)
    if (buf.length < end + 4 + len) return
    buf = buf.subarray(end + 4 + len)
    const w = waiting
    waiting = undefined
    w?.()
  })
  return {
    ready: new Promise<void>((r) => socket.once('connect', () => r())),
    roundTrip(request: string): Promise<number> {
      return new Promise((resolve, reject) => {
        const start = process.hrtime.bigint()
        const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000)
        waiting = () => {
          clearTimeout(timer)
          resolve(Number(process.hrtime.bigint() - start))
        }
        socket.write(request)
      })
    },
    close: () => socket.destroy(),
  }
}

t.test('through loopback: a bearer token wrong at its first byte answers as fast as one wrong at its last', async (t) => {
  const token = testSecret('timingTok')
  const gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  none: { url: "http://127.0.0.1:9", timeout: 1s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN}"
defaults:
  authFailures: { max: 100000000, window: 1m }
routes:
  - { prefix: /t/, upstream: none, auth: [bearer] }
`,
    { TOKEN: token },
    60_000,
  )
  const client = loopbackClient(gw.port)
  try {
    await client.ready
    const req = (tok: string) => `GET /t/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer ${tok}\r\n\r\n`
    const first = req(flip(token, 0))
    const last = req(flip(token, token.length - 1))
    for (let i = 0; i < 500; i++) await client.roundTrip(i % 2 ? first : last)
    const a: number[] = []
    const b: number[] = []
    const n = Math.min(SAMPLES, 5000)
    for (let i = 0; i < n * 2; i++) {
      const pickFirst = Math.random() < 0.5
      ;(pickFirst ? a : b).push(await client.roundTrip(pickFirst ? first : last))
    }
    const cut = [...a, ...b].sort((x, y) => x - y)[Math.floor((a.length + b.length) * 0.9)]!
    const ca = a.filter((v) => v <= cut)
    const cb = b.filter((v) => v <= cut)
    const tv = welch(ca, cb)
    const avg = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length / 1000
    t.comment(`loopback bearer: t = ${tv.toFixed(2)}, ${avg(ca).toFixed(0)} µs vs ${avg(cb).toFixed(0)} µs per request`)
    t.ok(Math.abs(tv) < T_LIMIT, `|t| = ${Math.abs(tv).toFixed(2)} < ${T_LIMIT}`)
  } finally {
    client.close()
    await gw.stop()
  }
})
