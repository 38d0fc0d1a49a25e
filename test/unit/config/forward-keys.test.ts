// The keys of issue 10's forwarding fixes (DESIGN §2): server.bufferLimit, upstreams.*.connections and
// a route's concurrency — their defaults, their bounds, and unknown keys inside them.
import t from 'tap'
import { formatFinding, loadConfigText } from '../../../src/config/load.js'

const FILE = '/etc/portcullis/gateway.yaml'
const ENV = { TOKEN_A: 'tok-' + 'a1b2c3d4'.repeat(5) }

const config = (o: { server?: string; upstream?: string; route?: string } = {}) => `version: 1
server:
  listen: 127.0.0.1:0
${o.server ?? ''}upstreams:
  be: { url: "http://127.0.0.1:9000"${o.upstream ?? ''} }
identities:
  - name: ops
    bearer: "\${env:TOKEN_A}"
routes:
  - path: /events
    upstream: be
    auth: [bearer]
${o.route ?? ''}`

const errors = (text: string) => {
  const r = loadConfigText(text, FILE, ENV)
  return r.ok ? [] : r.errors.map(formatFinding)
}

t.test('defaults: bufferLimit 256mb, connections 128, no concurrency limit', async (t) => {
  const r = loadConfigText(config(), FILE, ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join('\n'))
  t.equal(r.gateway.server.bufferLimit, 256 * 1024 * 1024)
  t.equal(r.gateway.upstreams.get('be')!.connections, 128)
  t.equal(r.gateway.routes[0]!.concurrency, null)
})

t.test('values are compiled: sizes, connections, concurrency with by defaulting to identity', async (t) => {
  const r = loadConfigText(config({ server: '  bodyLimit: 64kb\n  bufferLimit: 10mb\n', upstream: ', connections: 4', route: '    concurrency: { max: 3 }\n' }), FILE, ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join('\n'))
  t.equal(r.gateway.server.bufferLimit, 10 * 1024 * 1024)
  t.equal(r.gateway.upstreams.get('be')!.connections, 4)
  t.same(r.gateway.routes[0]!.concurrency, { max: 3, by: 'identity' })
  const ip = loadConfigText(config({ route: '    concurrency: { max: 1, by: ip }\n' }), FILE, ENV)
  t.same(ip.ok && ip.gateway.routes[0]!.concurrency, { max: 1, by: 'ip' })
})

t.test('bad values are errors at FILE:LINE:COL naming the field', async (t) => {
  t.match(errors(config({ upstream: ', connections: 0' })), [/:5:\d+: error: .*upstreams\.be\.connections/])
  t.match(errors(config({ route: '    concurrency: { max: 0 }\n' })), [/:13:\d+: error: .*routes\[0\]\.concurrency\.max/])
  t.match(errors(config({ route: '    concurrency: { max: 2, by: user }\n' })), [/:13:\d+: error: .*routes\[0\]\.concurrency\.by/])
  t.match(errors(config({ route: '    concurrency: { max: 2, per: ip }\n' })), [/:13:\d+: error: .*routes\[0\]\.concurrency\.per.*unknown key/])
  t.match(errors(config({ server: '  bufferLimit: lots\n' })), [/:4:\d+: error: .*server\.bufferLimit/])
  t.match(errors(config({ server: '  bodyLimit: 2mb\n  bufferLimit: 1mb\n' })), [/:5:\d+: error: .*server\.bufferLimit.*at least server\.bodyLimit/])
})
