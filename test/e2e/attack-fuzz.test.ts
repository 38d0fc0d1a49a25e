// Black-box property test against the real gateway: a few hundred random and mutated requests on a
// route that accepts bearer, API key, worker-v1 and rfc9421. None gets a 5xx; none reaches the backend
// without a valid credential; every untouched valid request does reach it, with the gateway's identity.
import t from 'tap'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, testSecret, type RunningGateway } from './harness.js'
import { exchange, startRawBackend, type RawBackend } from './attack-backend.js'
import { signRfc9421 } from '../../src/client/rfc9421.js'
import { SEED } from '../unit/fuzz/settings.js'

const TOKEN = testSecret('fzTok')
const API_KEY = testSecret('fzKey')
const WORKER_SECRET = testSecret('fzWorker')
const KEY7 = testSecret('fzKey7')
const SECRETS = [TOKEN, API_KEY, WORKER_SECRET, KEY7]

let be: RawBackend
let gw: RunningGateway

t.before(async () => {
  be = await startRawBackend()
  gw = await startGateway(
    `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 4kb
upstreams:
  raw: { url: "${be.url}", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN}"
  - name: coord
    roles: [ops]
    apiKey: "\${env:API_KEY}"
schemes:
  workers:
    type: worker-v1
    secret: "\${env:WORKER_SECRET}"
    window: 5m
    roles: [ops]
  signed:
    type: rfc9421
    window: 60s
    keys: { worker-7: "\${env:KEY7}" }
    roles: [ops]
defaults:
  authFailures: { max: 1000000, window: 1m }
routes:
  - { prefix: /multi/, upstream: raw, auth: [bearer, apiKey, workers, signed], roles: [ops] }
`,
    { TOKEN, API_KEY, WORKER_SECRET, KEY7 },
    60_000,
  )
})
t.teardown(async () => {
  await gw?.stop()
  await be?.close()
})

type Method = 'bearer' | 'apiKey' | 'workers' | 'signed'
interface Plan {
  /** What credential the request carries, and whether it is left valid. */
  method: Method | 'none'
  valid: boolean
  verb: 'GET' | 'POST'
  /** Index of the character to change in the credential (mutated requests), and its replacement. */
  at: number
  by: string
  /** Which part a signed request's mutation hits. */
  part: number
  junk: Array<[string, string]>
}

const B64ISH = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const HEX = '0123456789abcdef'
/** Header lines an attacker adds at random: credential headers with garbage, spoofed identity headers, noise. */
const junkHeader = fc.tuple(
  fc.constantFrom('Authorization', 'X-Api-Key', 'X-Worker-Id', 'X-Worker-Timestamp', 'X-Worker-Signature', 'Signature-Input', 'Signature', 'Content-Digest', 'X-Auth-Identity', 'X_Auth_Roles', 'X-Forwarded-For', 'Forwarded', 'X-Request-Id', 'Cookie', 'X-Other'),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 40 }),
)
const plan: fc.Arbitrary<Plan> = fc.record({
  method: fc.constantFrom<Method | 'none'>('bearer', 'apiKey', 'workers', 'signed', 'none'),
  valid: fc.boolean(),
  verb: fc.constantFrom<'GET' | 'POST'>('GET', 'POST'),
  at: fc.nat(),
  by: fc.constantFrom(...B64ISH.split('')),
  part: fc.nat({ max: 3 }),
  junk: fc.array(junkHeader, { maxLength: 3 }),
})

/** Replace the character at `at` (mod length) by `by`, or by another one when it is the same. */
function change(s: string, at: number, by: string, alphabet = B64ISH): string {
  const i = at % s.length
  const c = by === s[i] ? alphabet[(alphabet.indexOf(by) + 1) % alphabet.length]! : by
  return s.slice(0, i) + c + s.slice(i + 1)
}

/** The raw request for plan `p` number `n`, and whether it carries a valid credential. */
function build(p: Plan, n: number): { bytes: string; path: string; valid: boolean } {
  const path = `/multi/r${n}`
  const host = `127.0.0.1:${gw.port}`
  const body = p.verb === 'POST' ? `{"n":${n}}` : undefined
  const lines: Array<[string, string]> = [['Host', host]]
  let valid = false
  let sentPath = path
  let sentVerb: string = p.verb
  // Junk is added only to requests that carry no credential of their own or are mutated (a junk credential
  // header next to a valid one would just be ambiguous, which proves nothing).
  const junk = p.method === 'none' || !p.valid ? p.junk : p.junk.filter(([k]) => !/^(authorization|x-api-key|x-worker-|signature|content-digest)/i.test(k))
  switch (p.method) {
    case 'bearer':
      lines.push(['Authorization', `Bearer ${p.valid ? TOKEN : change(TOKEN, p.at, p.by)}`])
      valid = p.valid
      break
    case 'apiKey':
      lines.push(['X-Api-Key', p.valid ? API_KEY : change(API_KEY, p.at, p.by)])
      valid = p.valid
      break
    case 'workers': {
      const id = `w-${n}`
      const ts = String(Date.now())
      const sig = createHmac('sha256', WORKER_SECRET).update(`${id}:${ts}`).digest('hex')
      const parts = [id, ts, sig]
      if (!p.valid) {
        const k = p.part % 3
        parts[k] = k === 1 ? change(ts, p.at, String(p.at % 10), '0123456789') : change(parts[k]!, p.at, HEX[p.at % 16]!, k === 2 ? HEX : B64ISH)
      }
      lines.push(['X-Worker-Id', parts[0]!], ['X-Worker-Timestamp', parts[1]!], ['X-Worker-Signature', parts[2]!])
      valid = p.valid
      break
    }
    case 'signed': {
      const h = signRfc9421({ keyId: 'worker-7', secret: KEY7, method: p.verb, url: `http://${host}${path}`, body, nonce: `n-${n}-${SEED}` })
      let input = h['signature-input']
      let signature = h.signature
      if (!p.valid) {
        if (p.part === 0) signature = signature.replace(/:([^:]+):/, (_m, b64: string) => `:${change(b64.slice(0, -2), p.at, p.by)}${b64.slice(-2)}:`)
        else if (p.part === 1) input = input.replace(/created=([0-9]+)/, (_m, c: string) => `created=${Number(c) - 1}`)
        else if (p.part === 2) sentPath = `/multi/r${n}x`
        else sentVerb = p.verb === 'GET' ? 'DELETE' : 'PUT'
      }
      lines.push(['Signature-Input', input], ['Signature', signature])
      if (h['content-digest']) lines.push(['Content-Digest', h['content-digest']])
      valid = p.valid
      break
    }
  }
  for (const j of junk) lines.push(j)
  if (body !== undefined) lines.push(['Content-Length', String(Buffer.byteLength(body))])
  lines.push(['Connection', 'close'])
  const bytes = `${sentVerb} ${sentPath} HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body ?? ''}`
  return { bytes, path: sentPath, valid }
}

t.test('random and mutated requests: never a 5xx, never forwarded without a valid credential', async (t) => {
  // A few hundred in `npm test`; `npm run test:fuzz` (FUZZ_RUNS set) sends FUZZ_HTTP_RUNS, default 3000.
  const n = Number(process.env.FUZZ_HTTP_RUNS) || (process.env.FUZZ_RUNS ? 3000 : 300)
  const plans = fc.sample(plan, { seed: SEED, numRuns: n })
  const results: Array<{ n: number; plan: Plan; path: string; valid: boolean; status: number }> = []
  let next = 0
  const worker = async () => {
    for (let i = next++; i < plans.length; i = next++) {
      const b = build(plans[i]!, i)
      const { responses } = await exchange(gw.port, b.bytes, { expect: 1, timeoutMs: 10_000 })
      results.push({ n: i, plan: plans[i]!, path: b.path, valid: b.valid, status: responses[0]?.status ?? 0 })
    }
  }
  await Promise.all(Array.from({ length: 6 }, worker))
  await sleep(200)

  const serverErrors = results.filter((r) => r.status >= 500 || r.status === 0)
  t.same(serverErrors.map((r) => ({ n: r.n, status: r.status, method: r.plan.method })), [], 'no 5xx and no missing answer')
  const reached = new Map(be.requests.map((r) => [r.target, r]))
  const intruders = results.filter((r) => !r.valid && reached.has(r.path))
  t.same(intruders.map((r) => ({ n: r.n, method: r.plan.method, part: r.plan.part, status: r.status })), [], 'no request without a valid credential reached the backend')
  for (const r of be.requests) {
    const identity = r.headers.filter(([k]) => k.toLowerCase() === 'x-auth-identity')
    if (identity.length !== 1) t.fail(`${r.target} reached the backend with ${identity.length} x-auth-identity headers`)
  }
  const validOnes = results.filter((r) => r.valid)
  const refusedValid = validOnes.filter((r) => r.status !== 200 || !reached.has(r.path))
  t.same(refusedValid.map((r) => ({ n: r.n, method: r.plan.method, status: r.status })), [], 'every untouched valid request was forwarded (so the test can tell)')
  t.ok(validOnes.length > n / 10 && results.length - validOnes.length > n / 4, `a useful mix: ${validOnes.length} valid, ${results.length - validOnes.length} not`)
  t.same(be.malformed, [], 'the backend never received a malformed request')
  const out = gw.output()
  t.notOk(SECRETS.some((s) => out.includes(s)), 'no secret in the gateway output')
  t.comment(`${results.length} requests: ${validOnes.length} valid forwarded, statuses ${JSON.stringify(Object.fromEntries([...new Set(results.map((r) => r.status))].map((s) => [s, results.filter((r) => r.status === s).length])))}`)
})
