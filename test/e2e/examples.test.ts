// The client examples in examples/ (Python standard library, shell with openssl) against the real gateway.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startBackend, startGateway, testSecret } from './harness.js'

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples')

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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

t.test('Python and shell examples are accepted by the gateway', async (t) => {
  const secrets = { DISTRIBUTED_WORKER_SECRET: testSecret('w1'), SIGNING_KEY: testSecret('sk'), WRONG: testSecret('bad') }
  const backend = await startBackend()
  const gw = await startGateway(
    `version: 1
server: { listen: 127.0.0.1:0 }
upstreams: { orchestrator: { url: ${backend.url} } }
schemes:
  workers: { type: worker-v1, secret: "\${env:DISTRIBUTED_WORKER_SECRET}", roles: [worker] }
  signed: { type: rfc9421, keys: { worker-7: "\${env:SIGNING_KEY}" }, roles: [worker] }
routes:
  - { prefix: /v2/, upstream: orchestrator, auth: [workers, signed], roles: [worker] }
`,
    secrets,
  )
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
  })
  const url = gw.url + '/v2/nodes/n1/heartbeat'
  const py1 = await run('python3', [join(EXAMPLES, 'sign_worker_v1.py'), url], { DISTRIBUTED_WORKER_SECRET: secrets.DISTRIBUTED_WORKER_SECRET })
  t.equal(py1.code, 0, `sign_worker_v1.py: ${py1.out}`)
  const sh1 = await run('sh', [join(EXAMPLES, 'sign_worker_v1.sh'), url], { DISTRIBUTED_WORKER_SECRET: secrets.DISTRIBUTED_WORKER_SECRET })
  t.equal(sh1.code, 0, `sign_worker_v1.sh: ${sh1.out}`)
  const py2 = await run('python3', [join(EXAMPLES, 'sign_rfc9421.py'), url, '{"status":"ready"}'], { SIGNING_KEY: secrets.SIGNING_KEY, SIGNING_KEY_ID: 'worker-7' })
  t.equal(py2.code, 0, `sign_rfc9421.py: ${py2.out}`)
  const bad = await run('python3', [join(EXAMPLES, 'sign_rfc9421.py'), url, '{}'], { SIGNING_KEY: secrets.WRONG, SIGNING_KEY_ID: 'worker-7' })
  t.not(bad.code, 0, 'a wrong key is refused (the example exits non-zero)')
  const bodies = backend.requests.map((r) => r.body.toString())
  t.ok(bodies.includes('{"status":"ready"}'), 'the signed body reached the backend')
  t.equal(backend.requests.length, 3, 'exactly the three good requests were forwarded')
  for (const s of Object.values(secrets)) t.notOk(gw.output().includes(s), 'no secret in the gateway output')
})
