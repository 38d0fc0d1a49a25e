// Regressions of config loading through `check` and `serve` (DESIGN §1, §2, §3.1; issue 11): trustProxy
// entries are checked at load, one root cause gives one error, `check --json`, and the join endpoint in
// the route table.
import t from 'tap'
import { runCli, testSecret, writeConfig } from './harness.js'

const ALICE = testSecret('cfgAlice')
const PSK = testSecret('cfgPsk')
const MASTER = testSecret('cfgMaster')
const ENV = { CFG_ALICE: ALICE, CFG_PSK: PSK, CFG_MASTER: MASTER }
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, env, undefined, 60_000)

function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle)
  if (at === -1) throw new Error(`${needle} not in config`)
  return text.slice(0, at).split('\n').length
}

t.test('trustProxy entries are checked at load: a bad one is a FILE:LINE:COL error naming server.trustProxy[i]', async (t) => {
  const text = `version: 1
server:
  listen: 127.0.0.1:0
  trustProxy: [10.0.0.0/8, 10.0.0.0/33, proxy.internal, "::ffff:192.168.0.0/112"]
upstreams:
  app: { url: http://127.0.0.1:9 }
routes:
  - path: /a
    upstream: app
    public: true
`
  const file = writeConfig(text)
  for (const sub of ['check', 'serve']) {
    const r = await cli([sub, '--config', file], ENV)
    t.equal(r.code, 1, `${sub} refuses`)
    const errors = (r.stdout + r.stderr).split('\n').filter((l) => / error: /.test(l))
    t.equal(errors.length, 2, `${sub}: one error per bad entry\n${r.stdout}${r.stderr}`)
    t.match(errors[0], new RegExp(`^${file}:4:[0-9]+: error: server\\.trustProxy\\[1\\]: .*10\\.0\\.0\\.0/33`))
    t.match(errors[1], new RegExp(`^${file}:4:[0-9]+: error: server\\.trustProxy\\[2\\]: .*proxy\\.internal`))
  }
})

t.test('check: one unset scheme secret is one error, not one per route that names it', async (t) => {
  const routes = Array.from({ length: 6 }, (_, i) => `  - path: /r${i}\n    upstream: app\n    auth: [signed]\n`).join('')
  const text = `version: 1
server:
  listen: 127.0.0.1:0
upstreams:
  app: { url: http://127.0.0.1:9 }
schemes:
  signed:
    type: rfc9421
    derive: "\${env:CFG_UNSET_MASTER}"
routes:
${routes}`
  const file = writeConfig(text)
  const r = await cli(['check', '--config', file], {})
  t.equal(r.code, 1)
  const errors = (r.stdout + r.stderr).split('\n').filter((l) => / error: /.test(l))
  t.equal(errors.length, 1, r.stdout + r.stderr)
  t.match(errors[0], new RegExp(`^${file}:${lineOf(text, '"\${env:CFG_UNSET_MASTER}"')}:[0-9]+: error: schemes\\.signed\\.derive: .*CFG_UNSET_MASTER`))
})

t.test('check --json: valid, findings and the route table with the join endpoint', async (t) => {
  const text = `version: 1
server:
  listen: 127.0.0.1:0
  trustProxy: true
upstreams:
  app: { url: http://127.0.0.1:9 }
schemes:
  signed:
    type: rfc9421
    derive: "\${env:CFG_MASTER}"
join:
  psk: "\${env:CFG_PSK}"
  scheme: signed
routes:
  - path: /a
    methods: [GET]
    upstream: app
    auth: [signed]
`
  const file = writeConfig(text)
  const r = await cli(['check', '--config', file, '--json'], ENV)
  t.equal(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as { valid: boolean; findings: Record<string, unknown>[]; routes: Record<string, unknown>[] }
  t.equal(doc.valid, true)
  t.match(doc.findings, [{ file, line: lineOf(text, 'trustProxy: true'), col: Number, severity: 'warning', message: /trustProxy/ }])
  t.same(Object.keys(doc.findings[0]!).sort(), ['col', 'file', 'line', 'message', 'severity'])
  t.match(doc.routes, [{ path: '/_portcullis/join', methods: ['POST'], auth: ['signed'] }, { path: '/a', methods: ['GET'], upstream: 'app', auth: ['signed'] }])

  const plain = await cli(['check', '--config', file], ENV)
  t.match(plain.stdout, /\/_portcullis\/join/, 'the text table lists the join endpoint too')

  const bad = await cli(['check', '--config', writeConfig(text.replace('CFG_MASTER', 'CFG_UNSET')), '--json'], ENV)
  t.equal(bad.code, 1)
  const badDoc = JSON.parse(bad.stdout) as { valid: boolean; findings: { severity: string; message: string }[]; routes: unknown[] }
  t.equal(badDoc.valid, false)
  t.equal(badDoc.findings.filter((f) => f.severity === 'error').length, 1, JSON.stringify(badDoc.findings))
  t.same(badDoc.routes, [])
})

t.test('check and serve answer --help with their own usage, exit 0', async (t) => {
  for (const sub of ['check', 'serve']) {
    const r = await cli([sub, '--help'])
    t.equal(r.code, 0, sub)
    t.match(r.stdout, new RegExp(`^usage: portcullis ${sub} \\[--config PATH\\]`))
  }
})
