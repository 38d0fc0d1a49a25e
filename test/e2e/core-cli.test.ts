// Black-box CLI (DESIGN §1): `serve` refuses a bad config with one FILE:LINE:COL line per problem,
// `check` prints the route table and lints, `keygen` and `fingerprint` print what they promise.
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { runCli, testSecret, writeConfig } from './harness.js'

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex')
const TOKEN = testSecret('cliTok')
const KEY = testSecret('cliKey')
const WORKER = testSecret('cliWorker')
const SHORT = 'too-short-' + Math.random().toString(36).slice(2, 12) // well under 32 characters
const INLINE = testSecret('inline')
const ENV = { CLI_TOKEN: TOKEN, CLI_KEY: KEY, CLI_WORKER: WORKER, CLI_SHORT: SHORT }
const SECRETS = [TOKEN, KEY, WORKER, SHORT, INLINE]

function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle)
  if (at === -1) throw new Error(`${needle} not in config`)
  return text.slice(0, at).split('\n').length
}
function colOf(text: string, needle: string): number {
  const at = text.indexOf(needle)
  return at - text.lastIndexOf('\n', at - 1)
}
/** Bounded generously: on a loaded 2-core machine a config-loading CLI run can take seconds. */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}, input?: string) => runCli(args, env, input, 60_000)

const FINDING = /^(.+):([0-9]+):([0-9]+): (error|warning): (.+)$/

type Tap = Pick<typeof t, 'equal' | 'same' | 'match' | 'ok' | 'notOk'>
function noSecrets(t: Tap, out: string): void {
  for (const s of SECRETS) t.notOk(out.includes(s), `${s.slice(0, 8)}… not printed`)
}

t.test('keygen: 32 bytes hex by default; --bytes; --encoding base64url', async (t) => {
  const [a, b, short, url, bad] = await Promise.all([
    cli(['keygen']),
    cli(['keygen']),
    cli(['keygen', '--bytes', '16']),
    cli(['keygen', '--encoding', 'base64url']),
    cli(['keygen', '--encoding', 'rot13']),
  ])
  t.equal(a.code, 0)
  t.match(a.stdout, /^[0-9a-f]{64}\n$/, 'default: 64 hex characters')
  t.not(a.stdout, b.stdout, 'random each time')
  t.equal(short.code, 0)
  t.match(short.stdout, /^[0-9a-f]{32}\n$/, '--bytes 16: 32 hex characters')
  t.equal(url.code, 0)
  t.match(url.stdout, /^[A-Za-z0-9_-]{43}\n$/, '--encoding base64url: 43 characters, no padding')
  t.not(bad.code, 0, 'an unknown encoding is refused')
  t.match(bad.stderr, /encoding/)
})

t.test('fingerprint: token: + 6 hex, from an argument or stdin; --full is sha256: + 64 hex', async (t) => {
  const [arg, stdin, crlf, full, fullStdin] = await Promise.all([
    cli(['fingerprint', TOKEN]),
    cli(['fingerprint'], {}, `${TOKEN}\nsecond line\n`),
    cli(['fingerprint'], {}, `${TOKEN}\r\n`),
    cli(['fingerprint', '--full', TOKEN]),
    cli(['fingerprint', '--full'], {}, `${TOKEN}\n`),
  ])
  const want = `token:${sha256hex(TOKEN).slice(0, 6)}\n`
  t.equal(arg.code, 0)
  t.equal(arg.stdout, want)
  t.equal(stdin.code, 0)
  t.equal(stdin.stdout, want, 'stdin: the first line')
  t.equal(crlf.stdout, want, 'stdin: a CRLF line ending is not part of the token')
  t.equal(full.stdout, `sha256:${sha256hex(TOKEN)}\n`)
  t.equal(fullStdin.stdout, `sha256:${sha256hex(TOKEN)}\n`)
  noSecrets(t, [stdin, crlf, full, fullStdin].map((r) => r.stdout + r.stderr).join(''))
})

const BASE = `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  be: { url: "http://127.0.0.1:9000" }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:CLI_TOKEN}"
  - name: coordinator
    roles: [coordinator]
    apiKey: "\${env:CLI_KEY}"
`

t.test('serve refuses a bad config: exit 1, one FILE:LINE:COL line per problem on stderr', async (t) => {
  const text = `${BASE}  - name: inline
    bearer: "${INLINE}"
  - name: missing
    bearer: "\${env:CLI_NOT_SET_ANYWHERE}"
  - name: short
    apiKey: "\${env:CLI_SHORT}"
routes:
  - path: /a
    upstream: nowhere
    auth: [bearer]
  - path: /b
    upstream: be
    auth: [bearer, kerberos]
`
  const file = writeConfig(text)
  const r = await cli(['serve', '--config', file], ENV)
  t.equal(r.code, 1, 'exit 1')
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 5, `five problems, five lines:\n${r.stderr}`)
  const expected = [
    [lineOf(text, INLINE), /identities\[2\]\.bearer/],
    [lineOf(text, 'CLI_NOT_SET_ANYWHERE'), /identities\[3\]\.bearer.*CLI_NOT_SET_ANYWHERE/],
    [lineOf(text, 'CLI_SHORT'), /identities\[4\]\.apiKey.*32/],
    [lineOf(text, 'nowhere'), /routes\[0\]\.upstream.*nowhere/],
    [lineOf(text, 'kerberos'), /routes\[1\]\.auth\[1\].*kerberos/],
  ] as const
  for (const [line, re] of expected) {
    const hit = lines.find((l) => FINDING.exec(l)?.[2] === String(line))
    t.ok(hit, `a finding on line ${line}`)
    const m = FINDING.exec(hit ?? '')
    t.equal(m?.[1], file, 'names the file')
    t.equal(m?.[4], 'error')
    t.match(m?.[5] ?? '', re)
  }
  t.equal(FINDING.exec(lines.find((l) => l.includes('kerberos')) ?? '')?.[3], String(colOf(text, 'kerberos')), 'column of the unknown method')
  t.notMatch(r.stdout, /listening/, 'never started')
  noSecrets(t, r.stdout + r.stderr)
})

t.test('serve: unknown keys, YAML errors, $PORTCULLIS_CONFIG and a missing file', async (t) => {
  const unknown = `${BASE}routes:
  - path: /a
    upstream: be
    auth: [bearer]
    rateLimit: { max: 5, window: 1m, burst: 10 }
`
  const yaml = `${BASE}routes:
  - path: /a
    upstream: be: x
    public: true
`
  const fileU = writeConfig(unknown)
  const fileY = writeConfig(yaml)
  // one at a time: each loads the whole config machinery
  const u = await cli(['serve', '--config', fileU], ENV)
  const y = await cli(['serve'], { ...ENV, PORTCULLIS_CONFIG: fileY })
  const missing = await cli(['serve', '--config', '/nonexistent/portcullis/gateway.yaml'], ENV)
  t.equal(u.code, 1)
  t.equal(u.stderr, `${fileU}:${lineOf(unknown, 'burst')}:${colOf(unknown, 'burst')}: error: routes[0].rateLimit.burst: unknown key "burst"\n`)
  t.equal(y.code, 1, 'PORTCULLIS_CONFIG is the default config path')
  t.match(y.stderr, new RegExp(`^${fileY}:${lineOf(yaml, 'be: x')}:${colOf(yaml, 'be: x')}: error: YAML: .+\n$`), 'a YAML error at its line and column')
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^\/nonexistent\/portcullis\/gateway\.yaml:1:1: error: .+\n$/)
})

const workerV1Available = existsSync(new URL('../../src/auth/worker-v1.js', import.meta.url))

t.test('check: the route table and warnings only → exit 0', { skip: workerV1Available ? false : 'src/auth/worker-v1.ts does not exist yet' }, async (t) => {
  const text = `version: 1
server:
  listen: 0.0.0.0:8080
  trustProxy: ["10.0.0.0/8", "0.0.0.0/0"]
upstreams:
  orchestrator: { url: "http://127.0.0.1:9000" }
  pool-manager: { url: "http://127.0.0.1:9200" }
identities:
  - name: ops
    roles: [control-plane]
    bearer: "\${env:CLI_TOKEN}"
schemes:
  workers:
    type: worker-v1
    secret: "\${env:CLI_WORKER}"
    roles: [worker]
routes:
  - path: /health
    methods: [GET]
    upstream: orchestrator
    public: true
  - path: /v2/nodes/:id/heartbeat
    methods: [POST]
    upstream: orchestrator
    auth: [bearer]
    roles: [control-plane]
    rateLimit: { max: 120, window: 1m, by: identity }
  - prefix: /pools/
    upstream: pool-manager
    auth: [bearer, workers]
    roles: [control-plane, worker]
`
  const file = writeConfig(text)
  const r = await cli(['check', '--config', file], ENV)
  t.equal(r.code, 0, `exit 0 with warnings only:\n${r.stdout}${r.stderr}`)
  const lines = r.stdout.split('\n')
  const row = (needle: string) => lines.find((l) => l.includes(needle) && !FINDING.test(l)) ?? ''
  t.match(row('/health'), /GET.*\/health.*orchestrator.*public/)
  t.match(row('/v2/nodes/:id/heartbeat'), /POST.*\/v2\/nodes\/:id\/heartbeat.*orchestrator.*bearer.*control-plane.*120/)
  t.match(row('/pools/'), /\/pools\/.*pool-manager.*bearer,workers.*control-plane,worker/)
  const findings = lines.map((l) => FINDING.exec(l)).filter((m): m is RegExpExecArray => m !== null)
  t.same(findings.filter((m) => m[4] === 'error').map((m) => m[0]), [], 'no errors')
  const warning = (line: number) => findings.find((m) => m[4] === 'warning' && m[2] === String(line))
  t.match(warning(lineOf(text, 'listen: 0.0.0.0'))?.[5] ?? '', /0\.0\.0\.0.*TLS/, 'non-loopback listen without TLS')
  t.match(warning(lineOf(text, 'trustProxy'))?.[5] ?? '', /0\.0\.0\.0\/0/, 'trustProxy wider than a private range')
  t.equal(warning(lineOf(text, 'trustProxy'))?.[3], String(colOf(text, '"0.0.0.0/0"')), 'at the entry')
  t.match(warning(lineOf(text, 'type: worker-v1'))?.[5] ?? '', /workers.*worker-v1/, 'worker-v1 in use')
  t.equal(findings.length, 3, 'exactly three findings')
  for (const m of findings) t.equal(m[1], file)
  noSecrets(t, r.stdout + r.stderr)
})

t.test('check: an authenticated route shadowed by an earlier public prefix is an error → exit 1', async (t) => {
  const text = `${BASE}routes:
  - prefix: /pools/
    upstream: be
    public: true
  - path: /pools/:id/drain
    methods: [POST]
    upstream: be
    auth: [bearer]
`
  const file = writeConfig(text)
  const r = await cli(['check', '--config', file], ENV)
  t.equal(r.code, 1)
  const errors = r.stdout.split('\n').map((l) => FINDING.exec(l)).filter((m) => m?.[4] === 'error')
  t.equal(errors.length, 1, r.stdout)
  t.equal(errors[0]?.[1], file)
  t.equal(errors[0]?.[2], String(lineOf(text, '- path: /pools/:id/drain')))
  t.match(errors[0]?.[5] ?? '', /\/pools\/:id\/drain.*shadowed.*"\/pools\/"/)
})

t.test('check: a config error is a finding and exit 1; a clean config exits 0 with none', async (t) => {
  const bad = `${BASE}routes:
  - path: /a
    upstream: be
    auth: [bearer]
`
  const clean = `${BASE}routes:
  - path: /a
    upstream: be
    auth: [bearer, apiKey]
`
  const fileBad = writeConfig(bad)
  const fileClean = writeConfig(clean)
  const b = await cli(['check', '--config', fileBad], { CLI_TOKEN: SHORT, CLI_KEY: KEY })
  const c = await cli(['check', '--config', fileClean], ENV)
  t.equal(b.code, 1)
  t.match(b.stdout + b.stderr, new RegExp(`${fileBad}:${lineOf(bad, 'CLI_TOKEN')}:[0-9]+: error: identities\\[0\\]\\.bearer`))
  noSecrets(t, b.stdout + b.stderr)
  t.equal(c.code, 0)
  t.notMatch(c.stdout, /: (error|warning): /)
  t.match(c.stdout, /\/a.*bearer,apiKey/)
})
