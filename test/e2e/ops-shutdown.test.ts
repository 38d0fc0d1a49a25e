// Graceful shutdown (DESIGN §7): SIGTERM stops listening at once, lets in-flight requests finish up to
// server.shutdownGrace, then exits 0 — also when a request outlives the grace (it is cut, not waited for).
import t from 'tap'
import { Agent, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { spawn } from 'node:child_process'
import { CLI, startBackend, startGateway, writeConfig, type Backend, type RunningGateway } from './harness.js'

function config(backend: Backend, grace: string): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
  shutdownGrace: ${grace}
admin:
  listen: 127.0.0.1:0
upstreams:
  app: { url: ${backend.url}, timeout: 30s }
routes:
  - prefix: /
    upstream: app
    public: true
`
}

/** One request (a fresh connection unless an agent is given): its status, or the error code it failed with. */
function get(base: string, path: string, agent: Agent | false = false): Promise<{ status?: number; error?: string; body?: string }> {
  return new Promise((resolve) => {
    const req = request(base + path, { agent, timeout: 20_000 }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
      res.on('aborted', () => resolve({ error: 'aborted' }))
    })
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

/** Resolves once the backend has received `n` requests (bounded). */
async function backendSaw(backend: Backend, n: number, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (backend.requests.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  if (backend.requests.length < n) throw new Error('backend never saw the request')
}

function exited(gw: RunningGateway): Promise<number | null> {
  if (gw.child.exitCode !== null) return Promise.resolve(gw.child.exitCode)
  return new Promise((resolve) => gw.child.once('exit', (code) => resolve(code)))
}

t.test('SIGTERM: the request in flight completes with 200, new connections are refused, exit 0', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(config(backend, '10s'))
  t.teardown(() => gw.stop('SIGKILL'))

  // On a keep-alive connection: the drain must not wait for the client to hang up after its response.
  const keepAlive = new Agent({ keepAlive: true })
  t.teardown(() => keepAlive.destroy())
  t.equal((await get(gw.url, '/warm-up', keepAlive)).status, 200)
  const inFlight = get(gw.url, '/slow?ms=1200', keepAlive)
  await backendSaw(backend, 2)
  const sentAt = Date.now()
  gw.child.kill('SIGTERM')
  await gw.waitForLog((l) => l.msg === 'shutdown', 3000)
  // Stop listening "at once": a new connection shortly after the signal is refused.
  await new Promise((r) => setTimeout(r, 150))
  const late = await get(gw.url, '/')
  t.equal(late.error, 'ECONNREFUSED', 'a new connection after SIGTERM is refused')

  const first = await inFlight
  t.equal(first.status, 200, 'the request in flight when SIGTERM came finished normally')
  t.match(first.body, /"url":"\/slow\?ms=1200"/)
  const code = await exited(gw)
  t.equal(code, 0, 'exit code 0')
  t.ok(Date.now() - sentAt < 4000, 'exited soon after the in-flight request finished, well before the 10 s grace')
  t.ok(gw.audits().some((a) => a.path === '/slow' && a.status === 200), 'the drained request was audited')
})

t.test('SIGTERM: a request slower than shutdownGrace is cut and the process still exits 0 promptly', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(config(backend, '500ms'))
  t.teardown(() => gw.stop('SIGKILL'))

  const slow = get(gw.url, '/slow?ms=8000')
  await backendSaw(backend, 1)
  const sentAt = Date.now()
  gw.child.kill('SIGTERM')
  const code = await exited(gw)
  const took = Date.now() - sentAt
  t.equal(code, 0, 'exit code 0')
  t.ok(took < 3000, `exited ${took} ms after SIGTERM with a 500ms grace (request wanted 8 s)`)
  const r = await slow
  t.notOk(r.status === 200, 'the slow request did not get its answer')
})

t.test('SIGTERM with nothing in flight exits 0 at once; /readyz is 503 while draining', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(config(backend, '10s'))
  t.teardown(() => gw.stop('SIGKILL'))
  t.equal((await get(gw.adminUrl!, '/readyz')).status, 200)

  const slow = get(gw.url, '/slow?ms=1000')
  await backendSaw(backend, 1)
  gw.child.kill('SIGTERM')
  await gw.waitForLog((l) => l.msg === 'shutdown', 3000)
  const ready = await get(gw.adminUrl!, '/readyz')
  t.equal(ready.status, 503, '/readyz reports not ready while draining')
  t.match(ready.body, /shutting down/)
  t.equal((await get(gw.adminUrl!, '/healthz')).status, 200, '/healthz stays 200 while the process is alive')
  t.equal((await slow).status, 200)
  t.equal(await exited(gw), 0)

  const idle = await startGateway(config(backend, '10s'))
  t.teardown(() => idle.stop('SIGKILL'))
  const at = Date.now()
  t.equal(await idle.stop('SIGTERM'), 0)
  t.ok(Date.now() - at < 2000, 'an idle gateway stops at once')
})

t.test('SIGTERM: an open websocket tunnel is cut when the grace ends, and the process exits 0', async (t) => {
  const backend = await startBackend()
  // The backend's end of a tunnel is half-open once the gateway is gone; close it so the backend can stop.
  const tunnelEnds: Socket[] = []
  backend.server.on('upgrade', (_req, s: Socket) => tunnelEnds.push(s))
  t.teardown(() => {
    for (const s of tunnelEnds) s.destroy()
    return backend.close()
  })
  const gw = await startGateway(`version: 1
server:
  listen: 127.0.0.1:0
  shutdownGrace: 500ms
upstreams:
  app: { url: ${backend.url} }
routes:
  - path: /ws
    upstream: app
    public: true
    websocket: true
`)
  t.teardown(() => gw.stop('SIGKILL'))
  const socket = connect(gw.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let received = ''
  socket.on('data', (d) => (received += d))
  socket.on('error', () => {})
  const closed = new Promise<void>((r) => socket.on('close', () => r()))
  socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  const until = Date.now() + 5000
  while (!received.includes('101') && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  t.match(received, /^HTTP\/1\.1 101/, 'the tunnel is open')
  socket.write('ping')
  while (!received.includes('echo:ping') && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  t.match(received, /echo:ping/)

  const sentAt = Date.now()
  gw.child.kill('SIGTERM')
  t.equal(await exited(gw), 0, 'exit code 0')
  const took = Date.now() - sentAt
  t.ok(took < 2500, `exited ${took} ms after SIGTERM with a 500ms grace`)
  await closed
  t.pass('the tunnel was closed')
})

t.test('SIGTERM exits 0 promptly even when nobody reads stdout any more (gone, or stuck with a full pipe)', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  for (const reader of ['gone', 'stuck'] as const) {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', writeConfig(config(backend, '10s'))], { stdio: ['ignore', 'pipe', 'ignore'] })
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    const until = Date.now() + 15_000
    while (!out.includes('"listening"') && Date.now() < until) await new Promise((r) => setTimeout(r, 25))
    const url = String(JSON.parse(out.split('\n').find((l) => l.includes('"listening"'))!).url)
    if (reader === 'gone') child.stdout!.destroy()
    else {
      // Stop reading, then log well over a pipe buffer's worth of audit lines.
      child.stdout!.pause()
      child.stdout!.removeAllListeners('data')
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 10 }, () => get(url, '/' + 'x'.repeat(200))))
    }
    await new Promise((r) => setTimeout(r, 200))
    const sentAt = Date.now()
    child.kill('SIGTERM')
    const code = await Promise.race([
      new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
      new Promise<string>((r) => setTimeout(() => r('still running'), 8000)),
    ])
    t.equal(code, 0, `stdout ${reader}: exit code 0`)
    t.ok(Date.now() - sentAt < 4000, `stdout ${reader}: exited in ${Date.now() - sentAt} ms`)
  }
})
