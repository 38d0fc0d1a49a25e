// The image's HEALTHCHECK script (node dist/src/cli/healthcheck.js): it reads the config, so it is healthy
// with the admin listener on any port and also without `admin:` (issue 17: 9901 was hard-coded).
import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startBackend, startGateway, writeConfig } from './harness.js'

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'healthcheck.js')

function healthcheck(configFile: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT], { env: { PATH: process.env.PATH ?? '', PORTCULLIS_CONFIG: configFile }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

const config = (backend: string, admin: boolean) => `version: 1
server: { listen: 127.0.0.1:0 }
${admin ? 'admin: { listen: 127.0.0.1:0 }\n' : ''}upstreams: { app: { url: "${backend}" } }
routes:
  - { path: /health, upstream: app, public: true }
`

t.test('healthy through admin /healthz on whatever port admin.listen says; unhealthy when nothing answers', async (t) => {
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, true))
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
  })
  const admin = new URL(gw.adminUrl!)
  const file = writeConfig(config(backend.url, true).replace('admin: { listen: 127.0.0.1:0 }', `admin: { listen: "0.0.0.0:${admin.port}" }`))
  const ok = await healthcheck(file)
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, new RegExp(`^healthy: GET http://127\\.0\\.0\\.1:${admin.port}/healthz`), 'a wildcard listen is asked on loopback')
  await gw.stop()
  const down = await healthcheck(file)
  t.equal(down.code, 1, 'nothing listening: unhealthy')
  t.match(down.out, /^unhealthy: /)
})

t.test('without admin: healthy when the proxy listener accepts a connection', async (t) => {
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, false))
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
  })
  const file = writeConfig(config(backend.url, false).replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${gw.port}`))
  const r = await healthcheck(file)
  t.equal(r.code, 0, r.out)
  t.match(r.out, new RegExp(`^healthy: connect 127\\.0\\.0\\.1:${gw.port} \\(no admin listener configured\\)`))
  const missing = await healthcheck('/nonexistent/gateway.yaml')
  t.equal(missing.code, 1)
  t.match(missing.out, /^unhealthy: cannot read \/nonexistent\/gateway\.yaml: ENOENT/)
})
