// Hot reload (DESIGN §7) under load: while clients keep sending, the config file is rewritten many times —
// in place, replaced by rename, swapped through a symlink as a Kubernetes ConfigMap does — alternating good
// versions (a route's roles change) and bad ones (an unknown key, a secret that does not resolve).
// Every request must get the answer of the policy in force: no 5xx, no 401, no connection error.
import t from 'tap'
import { createHash } from 'node:crypto'
import { Agent, request } from 'node:http'
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { startBackend, startGateway, testSecret, type Backend, type RunningGateway } from './harness.js'

const ALICE = testSecret('alice')
const BOB = testSecret('bob')
const ENV = { OPS_ALICE_TOKEN: ALICE, OPS_BOB_TOKEN: BOB }

type Version = { kind: 'good'; roles: 'team-a' | 'team-b' } | { kind: 'bad'; fault: 'unknown-key' | 'missing-secret' }

function config(backend: Backend, v: Version, revision: number, extra = ''): string {
  const roleKey = v.kind === 'bad' && v.fault === 'unknown-key' ? 'rolez' : 'roles'
  const bobToken = v.kind === 'bad' && v.fault === 'missing-secret' ? '${env:OPS_TOKEN_THAT_IS_NOT_SET}' : '${env:OPS_BOB_TOKEN}'
  const roles = v.kind === 'good' ? v.roles : 'team-a'
  return `# revision ${revision}
version: 1
server:
  listen: 127.0.0.1:0
  shutdownGrace: 2s
admin:
  listen: 127.0.0.1:0
upstreams:
  app: { url: ${backend.url}, timeout: 5s }
identities:
  - name: alice
    roles: [team-a]
    bearer: ["\${env:OPS_ALICE_TOKEN}"]
  - name: bob
    roles: [team-b]
    bearer: ["${bobToken}"]
routes:
  - prefix: /work/
    upstream: app
    auth: [bearer]
    ${roleKey}: [${roles}]
  - path: /limited
    upstream: app
    auth: [bearer]
    rateLimit: { max: 3, window: 1m, by: identity }
${extra}`
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 })

function get(base: string, path: string, token?: string, useAgent: Agent | false = agent): Promise<{ status?: number; error?: string; body: string }> {
  return new Promise((resolve) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {}
    const req = request(base + path, { agent: useAgent, headers, timeout: 10_000 }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, body }))
    })
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, body: '' }))
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.end()
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** alice's status on /work/ under the policy in force: 200 when the route wants team-a, 403 for team-b. */
async function aliceStatus(gw: RunningGateway): Promise<number | undefined> {
  return (await get(gw.url, '/work/probe', ALICE)).status
}

/** Waits (bounded) until alice gets `status`; returns how long it took, or -1. */
async function waitForPolicy(gw: RunningGateway, status: number, timeoutMs = 3000): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if ((await aliceStatus(gw)) === status) return Date.now() - start
    await sleep(40)
  }
  return -1
}

function reloadLines(gw: RunningGateway, result: 'ok' | 'error'): Record<string, unknown>[] {
  return gw.logs().filter((l) => l.msg === 'config.reload' && l.result === result)
}

async function waitForReloadCount(gw: RunningGateway, result: 'ok' | 'error', n: number, timeoutMs = 3000): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (reloadLines(gw, result).length >= n) return Date.now() - start
    await sleep(25)
  }
  return -1
}

type Writer = 'in-place' | 'rename' | 'symlink'
let swaps = 0
/** Writes the config the way editors (in place, rename) and Kubernetes (a symlink swapped by rename) do. */
function writeAs(file: string, text: string, how: Writer): void {
  const dir = dirname(file)
  if (how === 'in-place') return writeFileSync(file, text)
  if (how === 'rename') {
    const tmp = join(dir, `.gateway.yaml.${++swaps}.tmp`)
    writeFileSync(tmp, text)
    return renameSync(tmp, file)
  }
  const data = join(dir, `..data_${++swaps}`)
  mkdirSync(data)
  writeFileSync(join(data, 'gateway.yaml'), text)
  const link = join(dir, `.link_${swaps}`)
  symlinkSync(join(data, 'gateway.yaml'), link)
  renameSync(link, file)
}

t.test('reload under load: only the policy in force answers; bad files keep the old config', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  let revision = 0
  const gw = await startGateway(config(backend, { kind: 'good', roles: 'team-a' }, ++revision), ENV)
  t.teardown(() => gw.stop('SIGKILL'))
  t.equal(await aliceStatus(gw), 200, 'alice allowed under the first config')

  // Clients: alice, bob, and one alternating — each request must be 200 or 403 (the two policies), nothing else.
  let stop = false
  const unexpected: string[] = []
  const statuses = new Map<number, number>()
  let sent = 0
  const client = async (tokens: string[]) => {
    let i = 0
    while (!stop && sent < 20_000) {
      const r = await get(gw.url, `/work/item-${i}`, tokens[i++ % tokens.length])
      sent++
      if (r.status === 200 || r.status === 403) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      else unexpected.push(r.error ?? `${r.status} ${r.body.slice(0, 200)}`)
      await sleep(2)
    }
  }
  const clients = [client([ALICE]), client([BOB]), client([ALICE, BOB])]

  const plan: Array<{ v: Version; how: Writer }> = [
    { v: { kind: 'bad', fault: 'unknown-key' }, how: 'in-place' },
    { v: { kind: 'good', roles: 'team-b' }, how: 'rename' },
    { v: { kind: 'bad', fault: 'missing-secret' }, how: 'rename' },
    { v: { kind: 'good', roles: 'team-a' }, how: 'symlink' },
    { v: { kind: 'bad', fault: 'missing-secret' }, how: 'symlink' },
    { v: { kind: 'good', roles: 'team-b' }, how: 'in-place' },
    { v: { kind: 'bad', fault: 'unknown-key' }, how: 'rename' },
    { v: { kind: 'good', roles: 'team-a' }, how: 'rename' },
  ]
  let inForce = 200
  let errors = 0
  const began = Date.now()
  for (const step of plan) {
    writeAs(gw.configFile, config(backend, step.v, ++revision), step.how)
    if (step.v.kind === 'bad') {
      errors++
      const took = await waitForReloadCount(gw, 'error', errors)
      t.ok(took >= 0 && took < 2000, `bad file (${step.v.fault}, ${step.how}) refused within 2 s (${took} ms)`)
      await sleep(100)
      t.equal(await aliceStatus(gw), inForce, `the old config keeps serving after the bad file (${step.v.fault})`)
    } else {
      inForce = step.v.roles === 'team-a' ? 200 : 403
      const took = await waitForPolicy(gw, inForce)
      t.ok(took >= 0 && took < 2000, `good file (${step.v.roles}, ${step.how}) in force within 2 s (${took} ms)`)
    }
  }
  // Keep the load going for at least ~4 s in all.
  while (Date.now() - began < 4000) await sleep(50)
  stop = true
  await Promise.all(clients)

  t.same(unexpected, [], 'no request failed other than by the policy in force (no 5xx, 401 or connection error)')
  t.ok(sent > 100, `requests kept flowing during reloads (${sent} sent)`)
  t.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(403) ?? 0) > 0, 'both policies answered')

  const errorLines = reloadLines(gw, 'error')
  t.equal(errorLines.length, 4, 'one config.reload error line per bad file')
  for (const line of errorLines) {
    t.equal(line.event, 'config.reload')
    const list = line.errors as string[]
    t.ok(Array.isArray(list) && list.length > 0, 'errors listed')
    for (const e of list) t.match(e, /gateway\.yaml:\d+:\d+: error: /, 'each error is FILE:LINE:COL')
  }
  const all = errorLines.flatMap((l) => l.errors as string[]).join('\n')
  t.match(all, /routes\[0\]\.rolez/, 'the unknown key is named')
  t.match(all, /identities\[1\]\.bearer/, 'the unresolved secret is named by its field')
  t.ok(reloadLines(gw, 'ok').length >= 4, 'every good file logged config.reload ok')

  const metrics = (await get(gw.adminUrl!, '/metrics', undefined, false)).body
  const count = (result: string) => Number(new RegExp(`portcullis_config_reloads_total\\{result="${result}"\\} (\\d+)`).exec(metrics)?.[1])
  t.equal(count('error'), 4, 'portcullis_config_reloads_total{result="error"} counts the bad files')
  t.ok(count('ok') >= 4, 'portcullis_config_reloads_total{result="ok"} counts the good files')
  t.notOk(gw.output().includes(ALICE) || gw.output().includes(BOB), 'no token in any output')
})

t.test('SIGHUP reloads (also a ${file:} secret that changed under an unchanged config)', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const first = testSecret('rotate1')
  const second = testSecret('rotate2')
  const gw = await startGateway(config(backend, { kind: 'good', roles: 'team-a' }, 1), ENV)
  t.teardown(() => gw.stop('SIGKILL'))
  // Point alice at a secret file: the config changes once (picked up by the watcher)...
  const secretFile = join(dirname(gw.configFile), 'alice.token')
  writeFileSync(secretFile, first + '\n')
  writeFileSync(gw.configFile, config(backend, { kind: 'good', roles: 'team-a' }, 2).replace('${env:OPS_ALICE_TOKEN}', `\${file:${secretFile}}`))
  t.ok((await waitForReloadCount(gw, 'ok', 1)) >= 0, 'the config change was picked up')
  t.equal((await get(gw.url, '/work/x', first)).status, 200)

  // ...then only the secret file changes: nothing reloads until SIGHUP.
  writeFileSync(secretFile, second + '\n')
  await sleep(1200)
  t.equal((await get(gw.url, '/work/x', first)).status, 200, 'the old secret serves until a reload')
  gw.child.kill('SIGHUP')
  t.ok((await waitForReloadCount(gw, 'ok', 2)) >= 0, 'SIGHUP logged config.reload ok')
  const hup = reloadLines(gw, 'ok')[1]!
  t.equal(hup.trigger, 'SIGHUP')
  t.equal((await get(gw.url, '/work/x', second)).status, 200, 'the new secret is accepted after SIGHUP')
  t.equal((await get(gw.url, '/work/x', first)).status, 401, 'the old secret is refused after SIGHUP')
  t.equal(gw.child.exitCode, null, 'SIGHUP did not stop the process')
  t.notOk(gw.output().includes(first) || gw.output().includes(second), 'no secret in any output')
})

t.test('rate-limit counters survive a reload; listener changes need a restart and keep the old listener', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const gw = await startGateway(config(backend, { kind: 'good', roles: 'team-a' }, 1), ENV)
  t.teardown(() => gw.stop('SIGKILL'))
  for (let i = 0; i < 3; i++) t.equal((await get(gw.url, '/limited', ALICE)).status, 200)

  // A reload that also moves server.listen and admin.listen: applied, but the listeners stay where they are.
  const moved = config(backend, { kind: 'good', roles: 'team-b' }, 2)
    .replace('listen: 127.0.0.1:0\n  shutdownGrace', 'listen: 127.0.0.1:1\n  shutdownGrace')
    .replace('admin:\n  listen: 127.0.0.1:0', 'admin:\n  listen: 127.0.0.1:2')
  writeFileSync(gw.configFile, moved)
  t.ok((await waitForPolicy(gw, 403)) >= 0, 'the new policy is in force on the old listener')
  // The new policy can answer before the parent has read the log line the child wrote after applying it.
  const line = await gw.waitForLog((l) => l.msg === 'config.reload' && l.result === 'ok')
  t.equal(line.level, 40, 'logged as a warning')
  t.same(line.restartRequired, ['server.listen', 'admin.listen'], 'names the keys that need a restart')
  t.equal((await get(gw.adminUrl!, '/healthz', undefined, false)).status, 200, 'the admin listener is still where it was')

  const fourth = await get(gw.url, '/limited', ALICE)
  t.equal(fourth.status, 429, 'the counter from before the reload still counts')
  const metrics = (await get(gw.adminUrl!, '/metrics', undefined, false)).body
  t.match(metrics, /portcullis_rate_limited_total\{route="\/limited",by="identity"\} 1/)
  // The fingerprint, never the token, labels the credential gauge.
  const fp = 'token:' + createHash('sha256').update(ALICE).digest('hex').slice(0, 6)
  t.match(metrics, `portcullis_credential_last_used_timestamp_seconds{identity="alice",fingerprint="${fp}"}`)
  t.notOk(metrics.includes(ALICE))
})

t.teardown(() => agent.destroy())
