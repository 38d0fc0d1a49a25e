// scripts/gen-certs.sh: a CA, a server certificate for localhost / 127.0.0.1 / ::1 and CN=<name> client
// certificates that `openssl verify` accepts — and that portcullis serves TLS and mutual TLS with.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startBackend, startGateway } from './harness.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const SCRIPT = join(ROOT, 'scripts', 'gen-certs.sh')

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('generates a CA, a server certificate and client certificates that openssl verifies', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'portcullis-certs-')), 'certs')
  const r = await run('bash', [SCRIPT, '-d', dir, '--san', 'DNS:gw.example.com', 'ci-runner', 'alice'])
  t.equal(r.code, 0, r.stderr)

  const verify = await run('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'server.crt'), join(dir, 'ci-runner.crt'), join(dir, 'alice.crt')])
  t.equal(verify.code, 0, verify.stderr)
  t.match(verify.stdout, /server\.crt: OK/)
  t.match(verify.stdout, /ci-runner\.crt: OK/)
  t.match(verify.stdout, /alice\.crt: OK/)

  const san = await run('openssl', ['x509', '-in', join(dir, 'server.crt'), '-noout', '-ext', 'subjectAltName,extendedKeyUsage'])
  t.match(san.stdout, /DNS:localhost/)
  t.match(san.stdout, /IP Address:127\.0\.0\.1/)
  t.match(san.stdout, /IP Address:0:0:0:0:0:0:0:1/)
  t.match(san.stdout, /DNS:gw\.example\.com/)
  t.match(san.stdout, /TLS Web Server Authentication/)

  const client = await run('openssl', ['x509', '-in', join(dir, 'ci-runner.crt'), '-noout', '-subject', '-nameopt', 'RFC2253', '-ext', 'extendedKeyUsage'])
  t.match(client.stdout, /subject=CN=ci-runner/)
  t.match(client.stdout, /TLS Web Client Authentication/)

  for (const key of ['ca.key', 'server.key', 'ci-runner.key']) t.equal(statSync(join(dir, key)).mode & 0o777, 0o600, `${key} is private`)

  // A later run reuses the CA: the new client verifies against the same ca.crt.
  const caBefore = readFileSync(join(dir, 'ca.crt'), 'utf8')
  const again = await run('bash', [SCRIPT, '-d', dir, 'bob'])
  t.equal(again.code, 0, again.stderr)
  t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), caBefore, 'the CA is reused')
  t.equal((await run('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'bob.crt')])).code, 0)

  t.equal((await run('bash', [SCRIPT, '-d', dir, '../evil'])).code, 2, 'a client name that is not a plain file name is refused')
  t.equal((await run('bash', [SCRIPT, '-d', dir, '--san', 'gw.example.com'])).code, 2, 'a SAN without DNS:/IP: is refused')
})

t.test('the certificates work with portcullis: TLS on 127.0.0.1 and an mtls identity by subject', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'portcullis-certs-')), 'certs')
  t.equal((await run('bash', [SCRIPT, '-d', dir, 'ci-runner'])).code, 0)
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(`version: 1
server:
  listen: 127.0.0.1:0
  tls: { cert: ${dir}/server.crt, key: ${dir}/server.key, clientCa: ${dir}/ca.crt }
upstreams:
  app: { url: ${backend.url} }
identities:
  - name: ci-runner
    roles: [admin]
    mtls: { subject: "CN=ci-runner" }
routes:
  - prefix: /ci/
    upstream: app
    auth: [mtls]
    roles: [admin]
`)
  t.teardown(() => gw.stop('SIGKILL'))
  t.match(gw.url, /^https:\/\/127\.0\.0\.1:/)
  const ca = readFileSync(join(dir, 'ca.crt'))
  const call = (withClient: boolean) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        gw.url + '/ci/run',
        { ca, agent: false, timeout: 10_000, ...(withClient ? { cert: readFileSync(join(dir, 'ci-runner.crt')), key: readFileSync(join(dir, 'ci-runner.key')) } : {}) },
        (res) => {
          let body = ''
          res.on('data', (d) => (body += d))
          res.on('end', () => resolve({ status: res.statusCode!, body }))
        },
      )
      req.on('error', reject)
      req.end()
    })
  const ok = await call(true)
  t.equal(ok.status, 200, 'the client certificate authenticates, verified against the generated CA')
  t.equal(JSON.parse(ok.body).headers['x-auth-identity'], 'ci-runner')
  t.equal((await call(false)).status, 401, 'no client certificate: 401')
})
