// DESIGN §2/§6: the admin listener (/healthz, /readyz, /metrics, /jwks.json) is never on the proxy port.
// A config that puts it there is an error at admin.listen, not an EADDRINUSE at start.
import t from 'tap'
import { formatFinding, loadConfigText } from '../../../src/config/load.js'

const FILE = '/etc/portcullis/gateway.yaml'

function config(server: string, admin: string): string {
  return `version: 1
server:
  listen: ${server}
admin:
  listen: ${admin}
upstreams:
  be: { url: "http://127.0.0.1:9000" }
routes:
  - path: /health
    upstream: be
    public: true
`
}

t.test('admin.listen on the proxy port is a config error naming admin.listen', async (t) => {
  for (const [server, admin] of [
    ['127.0.0.1:8080', '127.0.0.1:8080'],
    ['127.0.0.1:8080', '0.0.0.0:8080'],
    ['"[::1]:8080"', '"[::1]:8080"'],
  ]) {
    const r = loadConfigText(config(server!, admin!), FILE, {})
    t.notOk(r.ok, `${server} / ${admin}`)
    const lines = r.ok ? [] : r.errors.map(formatFinding)
    t.match(lines.join('\n'), /^\/etc\/portcullis\/gateway\.yaml:5:\d+: error: admin\.listen: must not be the proxy port/m)
  }
})

t.test('distinct ports, and port 0 for both, are fine', async (t) => {
  for (const [server, admin] of [
    ['127.0.0.1:8080', '127.0.0.1:9901'],
    ['127.0.0.1:0', '127.0.0.1:0'],
  ]) {
    const r = loadConfigText(config(server!, admin!), FILE, {})
    t.ok(r.ok, `${server} / ${admin}: ${r.ok ? '' : r.errors.map(formatFinding).join('; ')}`)
  }
})
