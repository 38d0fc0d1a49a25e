// Config loading (DESIGN §2): every problem is one FILE:LINE:COL finding naming the field, at the
// right line and column; unknown keys anywhere are errors; secrets are references, never printed.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatFinding, loadConfigText, type Finding, type LoadResult } from '../../../src/config/load.js'
import { tokenFingerprint } from '../../../src/auth/credential.js'
import type { Gateway } from '../../../src/config/compile.js'
import type { AuthRequest } from '../../../src/auth/types.js'

const FILE = '/etc/portcullis/gateway.yaml'
const TOKEN = 'tok-' + 'a1b2c3d4'.repeat(5) // 44 characters
const SHORT = 'short-secret-value-x1' // 21 characters
const ENV = { TOKEN_A: TOKEN, SHORT_TOKEN: SHORT }

/** 1-based line and column of the `nth` occurrence of `needle` in `text`. */
function pos(text: string, needle: string, nth = 0): { line: number; col: number } {
  let at = -1
  for (let i = 0; i <= nth; i++) {
    at = text.indexOf(needle, at + 1)
    if (at === -1) throw new Error(`${needle} not in config text`)
  }
  const before = text.slice(0, at).split('\n')
  return { line: before.length, col: before[before.length - 1]!.length + 1 }
}

function errorsOf(r: LoadResult): Finding[] {
  return r.ok ? [] : r.errors
}

function config(o: { top?: string; identities?: string; route?: string; routes?: string } = {}): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  be: { url: "http://127.0.0.1:9000", timeout: 5s }
identities:
  - name: ops
    roles: [ops]
    bearer: "\${env:TOKEN_A}"
${o.identities ?? ''}routes:
  - path: /health
    upstream: be
    public: true
${o.route ?? ''}${o.routes ?? ''}${o.top ?? ''}`
}

/** Exactly one error, at `needle` (its nth occurrence), whose message matches every pattern. */
function oneErrorAt(t: Tap, text: string, needle: string, patterns: RegExp[], nth = 0, env: NodeJS.ProcessEnv = ENV): Finding | undefined {
  const r = loadConfigText(text, FILE, env)
  t.equal(r.ok, false, 'refused')
  const errors = errorsOf(r)
  t.equal(errors.length, 1, `one error: ${errors.map(formatFinding).join(' | ')}`)
  const e = errors[0]
  if (!e) return undefined
  const p = pos(text, needle, nth)
  t.equal(e.file, FILE)
  t.equal(e.severity, 'error')
  t.same({ line: e.line, col: e.col }, p, `position of ${needle}: ${formatFinding(e)}`)
  for (const re of patterns) t.match(e.message, re)
  t.match(formatFinding(e), new RegExp(`^${FILE.replace(/\//g, '\\/')}:${p.line}:${p.col}: error: `))
  return e
}
type Tap = Pick<typeof t, 'equal' | 'same' | 'match' | 'notMatch'>

t.test('a valid config loads, with defaults filled', async (t) => {
  const r = loadConfigText(config(), FILE, ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join('\n'))
  t.equal(r.gateway.server.bodyLimit, 1024 * 1024, 'bodyLimit defaults to 1mb')
  t.same(r.gateway.server.listen, { host: '127.0.0.1', port: 0 })
  t.equal(r.gateway.routes.length, 1)
  t.equal(r.gateway.routes[0]!.id, '/health')
  t.equal(r.gateway.upstreams.get('be')!.timeoutMs, 5000)
})

t.test('unknown keys are errors anywhere, at the key', async (t) => {
  await t.test('top level', async (t) => {
    const text = config({ top: 'rotues: []\n' })
    oneErrorAt(t, text, 'rotues', [/rotues/, /unknown key/])
  })
  await t.test('in a route', async (t) => {
    const text = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    rolez: [ops]\n' })
    oneErrorAt(t, text, 'rolez', [/routes\[1\]\.rolez/, /unknown key/])
  })
  await t.test('in an identity', async (t) => {
    const text = config({ identities: '  - name: two\n    bearer: "${env:TOKEN_A}"\n    role: [x]\n' })
    oneErrorAt(t, text, 'role:', [/identities\[1\]\.role\b/, /unknown key/])
  })
  await t.test('in server', async (t) => {
    const text = config({ top: 'server2: {}\n' })
    oneErrorAt(t, text, 'server2', [/server2/, /unknown key/])
    const text2 = config().replace('  listen: 127.0.0.1:0\n', '  listen: 127.0.0.1:0\n  bodylimit: 1mb\n')
    oneErrorAt(t, text2, 'bodylimit', [/server\.bodylimit/, /unknown key/])
  })
  await t.test('in a route\'s forward', async (t) => {
    const text = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    forward: { credential: keep }\n' })
    oneErrorAt(t, text, 'credential:', [/routes\[1\]\.forward\.credential\b/, /unknown key/])
  })
  await t.test('in a nested rateLimit (a union with false)', async (t) => {
    const text = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    rateLimit: { max: 5, window: 1m, maxx: 9 }\n' })
    oneErrorAt(t, text, 'maxx', [/routes\[1\]\.rateLimit\.maxx/, /unknown key/])
  })
  await t.test('in defaults.rateLimit', async (t) => {
    const text = config({ top: 'defaults:\n  rateLimit:\n    max: 5\n    window: 1m\n    byy: ip\n' })
    oneErrorAt(t, text, 'byy', [/defaults\.rateLimit\.byy/, /unknown key/])
  })
  await t.test('in a scheme', async (t) => {
    const text = config({ top: 'schemes:\n  workers:\n    type: worker-v1\n    secret: "${env:TOKEN_A}"\n    windw: 5m\n' })
    oneErrorAt(t, text, 'windw', [/schemes\.workers\.windw/, /unknown key/])
  })
})

t.test('a problem in a scheme body is reported in the same run as problems elsewhere in the file', async (t) => {
  const text = config({
    route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    methd: [GET]\n',
    top: 'schemes:\n  workers:\n    type: worker-v1\n    secret: "${env:TOKEN_A}"\n    windw: 5m\n',
  })
  const r = loadConfigText(text, FILE, ENV)
  const errors = errorsOf(r)
  t.same(errors.map((e) => e.line).sort((a, b) => a - b), [pos(text, 'methd').line, pos(text, 'windw').line], errors.map(formatFinding).join(' | '))
})

t.test('rateLimit: false on a route turns the default limit off; an absent rateLimit takes the default', async (t) => {
  const text = config({
    route: '  - path: /off\n    upstream: be\n    auth: [bearer]\n    rateLimit: false\n  - path: /default\n    upstream: be\n    auth: [bearer]\n',
    top: 'defaults:\n  rateLimit: { max: 5, window: 1m }\n',
  })
  const r = loadConfigText(text, FILE, ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join('\n'))
  const route = (id: string) => r.gateway.routes.find((x) => x.id === id)!
  t.equal(route('/off').rateLimit, null, 'rateLimit: false → no limit')
  t.same(route('/default').rateLimit, { max: 5, windowMs: 60_000, by: 'identity' }, 'absent → defaults.rateLimit')
})

t.test('a route needs public: true or auth', async (t) => {
  const text = config({ route: '  - path: /nothing\n    upstream: be\n' })
  oneErrorAt(t, text, 'path: /nothing', [/routes\[1\]/, /public: true or auth/])
  const text2 = config({ route: '  - path: /nothing\n    upstream: be\n    public: false\n' })
  oneErrorAt(t, text2, 'path: /nothing', [/routes\[1\]/, /public: true or auth/])
})

t.test('secrets: inline literals, unresolved and short references are errors naming the field, never the value', async (t) => {
  await t.test('inline literal', async (t) => {
    const literal = 'inline-literal-token-' + 'z'.repeat(30)
    const text = config({ identities: `  - name: two\n    bearer: "${literal}"\n` })
    const e = oneErrorAt(t, text, `"${literal}`, [/identities\[1\]\.bearer/, /inline/])
    t.notMatch(e?.message ?? '', literal)
  })
  await t.test('${env:MISSING}', async (t) => {
    const text = config({ identities: '  - name: two\n    apiKey: "${env:PORTCULLIS_TEST_MISSING}"\n' })
    oneErrorAt(t, text, '"${env:PORTCULLIS_TEST_MISSING}', [/identities\[1\]\.apiKey/, /PORTCULLIS_TEST_MISSING/])
  })
  await t.test('shorter than 32 characters, in a rotation list', async (t) => {
    const text = config({ identities: '  - name: two\n    bearer: ["${env:TOKEN_A}", "${env:SHORT_TOKEN}"]\n' })
    // TOKEN_A is already given to `ops`, so use a fresh long one for the first entry
    const env = { ...ENV, TOKEN_B: 'b'.repeat(40) }
    const e = oneErrorAt(t, text.replace('["${env:TOKEN_A}"', '["${env:TOKEN_B}"'), '"${env:SHORT_TOKEN}', [/identities\[1\]\.bearer\[1\]/, /32/], 0, env)
    t.notMatch(e?.message ?? '', SHORT, 'the short value is not printed')
  })
  await t.test('a scheme secret', async (t) => {
    const text = config({ top: 'schemes:\n  workers:\n    type: worker-v1\n    secret: "${env:SHORT_TOKEN}"\n' })
    const e = oneErrorAt(t, text, '"${env:SHORT_TOKEN}', [/schemes\.workers\.secret/, /32/])
    t.notMatch(e?.message ?? '', SHORT)
  })
  await t.test('a stored sha256: digest may be inline', async (t) => {
    const digest = 'sha256:' + '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
    const r = loadConfigText(config({ identities: `  - name: dash\n    apiKey: "${digest}"\n` }), FILE, ENV)
    t.equal(r.ok, true, errorsOf(r).map(formatFinding).join(' | '))
  })
})

function bearerOf(gw: Gateway, token: string): string | undefined {
  const a = gw.authenticators.get('bearer')!
  const req = { raw: { headers: { authorization: `Bearer ${token}` } }, method: 'GET', path: '/', query: '', target: '/', tls: false, now: Date.now() } as unknown as AuthRequest
  const out = a.authenticate(req) as { kind: string; identity?: { name: string } }
  return out.kind === 'identity' ? out.identity!.name : undefined
}

t.test('${file:…} secrets: trailing newline trimmed, length checked after trimming', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-load-'))
  const good = join(dir, 'token')
  const fileToken = 'file-token-' + 'q'.repeat(30)
  writeFileSync(good, fileToken + '\n')
  const short = join(dir, 'short')
  writeFileSync(short, 'x'.repeat(31) + '\n')
  const r = loadConfigText(config({ identities: `  - name: filer\n    bearer: "\${file:${good}}"\n` }), FILE, ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join('\n'))
  t.equal(bearerOf(r.gateway, fileToken), 'filer', 'the token without the newline is the secret')
  t.equal(bearerOf(r.gateway, fileToken + 'x'), undefined)
  t.equal(bearerOf(r.gateway, TOKEN), 'ops')

  const text = config({ identities: `  - name: filer\n    bearer: "\${file:${short}}"\n` })
  oneErrorAt(t, text, '"${file:', [/identities\[1\]\.bearer/, /32/])
  const text2 = config({ identities: `  - name: filer\n    bearer: "\${file:${join(dir, 'absent')}}"\n` })
  oneErrorAt(t, text2, '"${file:', [/identities\[1\]\.bearer/, /does not resolve/])
})

t.test('unknown upstream and unknown auth method are errors at their value', async (t) => {
  const text = config({ route: '  - path: /x\n    upstream: nowhere\n    auth: [bearer]\n' })
  oneErrorAt(t, text, 'nowhere', [/routes\[1\]\.upstream/, /unknown upstream "nowhere"/])
  const text2 = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer, kerberos]\n' })
  oneErrorAt(t, text2, 'kerberos', [/routes\[1\]\.auth\[1\]/, /unknown auth method "kerberos"/])
})

t.test('values outside an enum or a pattern say what is expected', async (t) => {
  const text = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    loopback: yes\n' })
  oneErrorAt(t, text, 'yes', [/routes\[1\]\.loopback/, /"allow"/, /"deny"/])
  const text2 = config({ route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    rateLimit: { max: 5, window: 5x }\n' })
  const r = loadConfigText(text2, FILE, ENV)
  t.ok(errorsOf(r).some((e) => /routes\[1\]\.rateLimit/.test(e.message) && /duration/.test(e.message)), errorsOf(r).map(formatFinding).join(' | '))
})

t.test('YAML syntax errors are reported at their position', async (t) => {
  const text = config({ route: '  - path: /x\n    upstream: be: x\n    public: true\n' })
  oneErrorAt(t, text, 'be: x', [/YAML/])
  const dup = config({ route: '  - path: /x\n    upstream: be\n    public: true\n    upstream: be\n' })
  oneErrorAt(t, dup, 'upstream: be', [/YAML/, /unique/], 2)
  const tab = config({ route: '\t- path: /x\n' })
  const first = errorsOf(loadConfigText(tab, FILE, ENV))[0]
  t.same(first && { line: first.line, col: first.col, tabs: /Tabs/.test(first.message) }, { ...pos(tab, '\t- path'), tabs: true })
})

t.test('several problems give several findings, each at its own line', async (t) => {
  const text = config({
    identities: '  - name: two\n    bearer: "${env:PORTCULLIS_TEST_MISSING}"\n',
    route: '  - path: /a\n    upstream: nowhere\n    auth: [bearer]\n  - path: /b\n    upstream: be\n    auth: [nope]\n',
  })
  const r = loadConfigText(text, FILE, ENV)
  const lines = errorsOf(r).map((e) => e.line).sort((a, b) => a - b)
  t.same(lines, [pos(text, '${env:PORTCULLIS').line, pos(text, 'nowhere').line, pos(text, 'nope').line])
})

t.test('no finding ever quotes a resolved secret', async (t) => {
  const text = config({ identities: '  - name: dup\n    bearer: "${env:TOKEN_A}"\n  - name: short\n    apiKey: "${env:SHORT_TOKEN}"\n' })
  const r = loadConfigText(text, FILE, ENV)
  const all = [...errorsOf(r), ...r.warnings].map(formatFinding).join('\n')
  t.equal(errorsOf(r).length, 2, all)
  t.notMatch(all, TOKEN)
  t.notMatch(all, SHORT)
  t.notMatch(all, tokenFingerprint(TOKEN).slice(6), 'not even a fingerprint of a configured secret')
})

t.test('every problem of the file in one run: a schema error elsewhere does not hide an unresolved secret', async (t) => {
  const text = config({
    identities: '  - name: ci\n    bearer: "${env:NOT_SET_ANYWHERE}"\n',
    route: '  - path: /x\n    upstream: be\n    auth: [bearer]\n    methd: [GET]\n  - path: /y\n    upstream: nowhere\n    auth: [bearer]\n',
    top: 'extra: 1\n',
  })
  const errors = errorsOf(loadConfigText(text, FILE, ENV))
  const got = errors.map((e) => `${e.line}:${e.message.split(':')[0]}`).sort()
  const want = [
    `${pos(text, 'NOT_SET_ANYWHERE').line}:identities[1].bearer`,
    `${pos(text, 'methd').line}:routes[1].methd`,
    `${pos(text, 'nowhere').line}:routes[2].upstream`,
    `${pos(text, 'extra').line}:extra`,
  ].sort()
  t.same(got, want, errors.map(formatFinding).join('\n'))
})

t.test('one root cause, one error: a route the schema refused gives no second error from compiling it', async (t) => {
  const text = config({ route: '  - path: /x\n    upstream: nowhere\n    auth: bearer\n' })
  const errors = errorsOf(loadConfigText(text, FILE, ENV))
  t.equal(errors.length, 1, errors.map(formatFinding).join('\n'))
  t.match(errors[0]?.message, /routes\[1\]\.auth/)
})
