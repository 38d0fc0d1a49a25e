// `check`'s lints (DESIGN §1): an earlier public or wider route shadowing a narrower authenticated one
// (error), worker-v1 in use, a non-loopback listen without TLS, and trustProxy wider than a private
// range (warnings) — each at the position of the route or key it names.
import t from 'tap'
import { loadConfigText } from '../../../src/config/load.js'
import { lintGateway, type Lint } from '../../../src/config/lint.js'

const ENV = { TOKEN_A: 'a'.repeat(40), WORKER_SECRET: 'w'.repeat(40) }

function load(routes: string, o: { server?: string; top?: string } = {}) {
  const text = `version: 1
server:
${o.server ?? '  listen: 127.0.0.1:0\n'}upstreams:
  be: { url: "http://127.0.0.1:9000" }
identities:
  - name: ops
    bearer: "\${env:TOKEN_A}"
${o.top ?? ''}routes:
${routes}`
  const r = loadConfigText(text, 'gateway.yaml', ENV)
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'))
  return { text, lints: lintGateway(r.gateway), position: r.position }
}

function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle)
  if (at === -1) throw new Error(`${needle} not found`)
  return text.slice(0, at).split('\n').length
}

const only = (lints: Lint[], severity: Lint['severity']) => lints.filter((l) => l.severity === severity)

t.test('a public prefix before a narrower authenticated route is an error naming both', async (t) => {
  const { text, lints, position } = load(`  - prefix: /pools/
    upstream: be
    public: true
  - path: /pools/:id/drain
    upstream: be
    auth: [bearer]
`)
  t.equal(lints.length, 1)
  const l = lints[0]!
  t.equal(l.severity, 'error')
  t.same(l.path, ['routes', 1])
  t.match(l.message, '/pools/:id/drain')
  t.match(l.message, '"/pools/"')
  t.equal(position(l.path).line, lineOf(text, '- path: /pools/:id/drain'))
})

t.test('shadowing by a wider authenticated route is an error too; a shadowed public route is a warning', async (t) => {
  const a = load(`  - prefix: /api
    upstream: be
    auth: [bearer]
  - path: /api/admin
    upstream: be
    auth: [bearer]
    roles: [admin]
`)
  t.same(a.lints.map((l) => [l.severity, l.path]), [['error', ['routes', 1]]])
  const b = load(`  - path: /a/:id
    upstream: be
    public: true
  - path: /a/x
    upstream: be
    public: true
`)
  t.same(b.lints.map((l) => [l.severity, l.path]), [['warning', ['routes', 1]]])
})

t.test('routes that are not shadowed give no finding', async (t) => {
  const cases: [string, string][] = [
    ['prefix /pools/ does not cover path /pools', `  - prefix: /pools/
    upstream: be
    public: true
  - path: /pools
    upstream: be
    auth: [bearer]
`],
    ['prefix /pools does not cover /poolsx', `  - prefix: /pools
    upstream: be
    public: true
  - prefix: /poolsx
    upstream: be
    auth: [bearer]
`],
    ['different methods', `  - prefix: /pools/
    methods: [GET]
    upstream: be
    public: true
  - path: /pools/:id
    methods: [POST]
    upstream: be
    auth: [bearer]
`],
    ['the narrower route first', `  - path: /pools/:id
    upstream: be
    auth: [bearer]
  - prefix: /pools/
    upstream: be
    public: true
`],
    ['an exact earlier path does not cover a parameter', `  - path: /pools/x
    upstream: be
    public: true
  - path: /pools/:id
    upstream: be
    auth: [bearer]
`],
  ]
  for (const [why, routes] of cases) t.same(load(routes).lints, [], why)
})

const ONE_ROUTE = `  - path: /x
    upstream: be
    auth: [bearer]
`

t.test('worker-v1 in use is a warning at the scheme', async (t) => {
  const { text, lints, position } = load(
    `  - path: /x
    upstream: be
    auth: [workers]
`,
    { top: 'schemes:\n  workers:\n    type: worker-v1\n    secret: "${env:WORKER_SECRET}"\n' },
  )
  t.same(only(lints, 'error'), [])
  const w = only(lints, 'warning')
  t.equal(w.length, 1)
  t.match(w[0]!.message, /worker-v1/)
  t.match(w[0]!.message, /workers/)
  t.match(w[0]!.message, /not signed/)
  t.equal(position(w[0]!.path).line, lineOf(text, 'type: worker-v1'))
})

t.test('a non-loopback listen without TLS is a warning; loopback listens are not', async (t) => {
  const { text, lints, position } = load(ONE_ROUTE, { server: '  listen: 0.0.0.0:8080\n' })
  t.equal(lints.length, 1)
  t.equal(lints[0]!.severity, 'warning')
  t.match(lints[0]!.message, /0\.0\.0\.0/)
  t.match(lints[0]!.message, /TLS/)
  t.equal(position(lints[0]!.path).line, lineOf(text, 'listen: 0.0.0.0'))
  for (const listen of ['127.0.0.1:8080', '"[::1]:8080"', 'localhost:8080', '127.0.0.2:0']) t.same(load(ONE_ROUTE, { server: `  listen: ${listen}\n` }).lints, [], listen)
  t.equal(load(ONE_ROUTE, { server: '  listen: 10.1.2.3:8080\n' }).lints.length, 1, 'a private address is still the network')
})

t.test('trustProxy wider than a private range is a warning per entry', async (t) => {
  const { text, lints, position } = load(ONE_ROUTE, { server: '  listen: 127.0.0.1:0\n  trustProxy: ["10.0.0.0/8", "0.0.0.0/0"]\n' })
  t.equal(lints.length, 1)
  t.equal(lints[0]!.severity, 'warning')
  t.same(lints[0]!.path, ['server', 'trustProxy', 1])
  t.match(lints[0]!.message, '0.0.0.0/0')
  t.same(position(lints[0]!.path), { line: lineOf(text, 'trustProxy'), col: text.split('\n')[lineOf(text, 'trustProxy') - 1]!.indexOf('"0.0.0.0/0"') + 1 })
  for (const wide of ['0.0.0.0/0', '::/0', '10.0.0.0/7', '172.16.0.0/8', '8.8.8.0/24']) {
    t.equal(load(ONE_ROUTE, { server: `  listen: 127.0.0.1:0\n  trustProxy: ["${wide}"]\n` }).lints.length, 1, `${wide} warns`)
  }
  for (const narrow of ['10.0.0.0/8', '172.16.0.0/12', '192.168.1.0/24', '127.0.0.1', 'fc00::/7', '::1', '::ffff:10.0.0.0/104', '::ffff:192.168.1.1']) {
    t.same(load(ONE_ROUTE, { server: `  listen: 127.0.0.1:0\n  trustProxy: ["${narrow}"]\n` }).lints, [], `${narrow} is fine`)
  }
  t.equal(load(ONE_ROUTE, { server: '  listen: 127.0.0.1:0\n  trustProxy: true\n' }).lints.length, 1, 'trustProxy: true warns')
  t.same(load(ONE_ROUTE, { server: '  listen: 127.0.0.1:0\n  trustProxy: false\n' }).lints, [])
})

t.test('a loopback: allow route while trustProxy holds a loopback address is a warning at the route', async (t) => {
  const LOCAL = '  - path: /local\n    upstream: be\n    auth: [bearer]\n    loopback: allow\n'
  for (const trust of ['[127.0.0.1]', '["::1"]', '["127.0.0.0/8"]', '["::ffff:127.0.0.1"]', 'true']) {
    const { text, lints, position } = load(LOCAL, { server: `  listen: 127.0.0.1:0\n  trustProxy: ${trust}\n` })
    const hit = lints.filter((l) => /loopback: allow/.test(l.message))
    t.equal(hit.length, 1, `trustProxy: ${trust}`)
    t.equal(hit[0]!.severity, 'warning')
    t.match(hit[0]!.message, /"\/local".*trustProxy/)
    t.equal(position(hit[0]!.path).line, lineOf(text, 'loopback: allow'))
  }
  for (const trust of ['["10.0.0.0/8"]', 'false']) {
    const { lints } = load(LOCAL, { server: `  listen: 127.0.0.1:0\n  trustProxy: ${trust}\n` })
    t.same(lints.filter((l) => /loopback: allow/.test(l.message)), [], `trustProxy: ${trust} gives none`)
  }
  const { lints } = load('  - path: /local\n    upstream: be\n    auth: [bearer]\n', { server: '  listen: 127.0.0.1:0\n  trustProxy: [127.0.0.1]\n' })
  t.same(lints, [], 'no loopback: allow route, no warning')
})
