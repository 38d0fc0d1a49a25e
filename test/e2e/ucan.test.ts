// DESIGN §4.8 through real sockets: a cluster root key delegates /pool/preload to a worker key with
// `portcullis ucan delegate`; the worker's `ucan invoke` is accepted once (then REPLAYED), and a
// command the delegation does not cover is 403. Binding to method, path and body; revocation; time.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, startBackend, startGateway, writeConfig, type Backend, type RunningGateway } from './harness.js'
import { tokenFingerprint } from '../../src/auth/credential.js'
import { ucanDelegate, ucanDid, ucanInvocation } from '../../src/client/ucan.js'
import { decodeContainerText } from '../../src/ucan/container.js'
import { tokenCid } from '../../src/ucan/token.js'

const dir = mkdtempSync(join(tmpdir(), 'portcullis-ucan-e2e-'))
const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) => k.export({ format: 'pem', type: 'pkcs8' }) as string
const rootKey = join(dir, 'root.pem')
const workerKey = join(dir, 'worker.pem')
const revokedWorkerKey = join(dir, 'revoked-worker.pem')
writeFileSync(rootKey, pem(generateKeyPairSync('ed25519').privateKey))
writeFileSync(workerKey, pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey))
writeFileSync(revokedWorkerKey, pem(generateKeyPairSync('ed25519').privateKey))
const ROOT = ucanDid(readFileSync(rootKey, 'utf8'))
const WORKER = ucanDid(readFileSync(workerKey, 'utf8'))
const REVOKED_WORKER = ucanDid(readFileSync(revokedWorkerKey, 'utf8'))
const revokedDlg = ucanDelegate({ key: readFileSync(rootKey, 'utf8'), aud: REVOKED_WORKER, sub: ROOT, cmd: '/pool' })
const REVOKED_CID = tokenCid(decodeContainerText(revokedDlg)[0]!).toString()

function config(backendUrl: string, routes = `
  - { path: /pools/:id/preload, methods: [POST], upstream: pool-manager, auth: [cluster], command: /pool/preload, roles: [worker] }
  - { path: /pools/:id/drain, methods: [POST], upstream: pool-manager, auth: [cluster], command: /pool/drain }`): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
upstreams:
  pool-manager: { url: "${backendUrl}" }
schemes:
  cluster:
    type: ucan
    subjects: ["${ROOT}"]
    window: 5m
    roles: [worker]
    revoked: ["${REVOKED_CID}"]
routes:${routes}
`
}

let backend: Backend
let gw: RunningGateway
let dlgFile: string
let dlgStderr: string

t.before(async () => {
  backend = await startBackend()
  gw = await startGateway(config(backend.url))
  const d = await runCli(['ucan', 'delegate', '--key', rootKey, '--aud', WORKER, '--sub', ROOT, '--cmd', '/pool/preload', '--ttl', '1h'])
  if (d.code !== 0) throw new Error(d.stderr)
  dlgFile = join(dir, 'worker.ucan')
  dlgStderr = d.stderr
  writeFileSync(dlgFile, d.stdout)
})
t.teardown(async () => {
  await gw?.stop()
  await backend?.close()
})

/** The worker's invocation through the client library (what `ucan invoke` runs; the CLI itself is tested below). */
function invokeHeader(path: string, cmd: string, body?: string): string {
  return ucanInvocation({ key: readFileSync(workerKey, 'utf8'), sub: ROOT, cmd, proofs: [readFileSync(dlgFile, 'utf8')], method: 'POST', target: path, ...(body !== undefined ? { body } : {}) }).authorization
}

async function invokeWithCli(path: string, cmd: string, body?: string): Promise<string> {
  const r = await runCli(['ucan', 'invoke', '--key', workerKey, '--sub', ROOT, '--cmd', cmd, '--proof', dlgFile, '-X', 'POST', ...(body !== undefined ? ['-d', body] : []), gw.url + path])
  if (r.code !== 0) throw new Error(r.stderr)
  const m = /^Authorization: (Bearer \S+)\n$/.exec(r.stdout)
  if (!m) throw new Error(`unexpected output ${r.stdout}`)
  return m[1]!
}

async function post(path: string, authorization: string, body?: string) {
  const res = await fetch(gw.url + path, { method: 'POST', headers: { authorization }, ...(body !== undefined ? { body } : {}) })
  const text = await res.text()
  let json: Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON
  }
  return { status: res.status, json }
}

t.test('ucan did prints the did:key; delegate prints a C container', async (t) => {
  const r = await runCli(['ucan', 'did', '--key', workerKey])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim(), WORKER)
  t.match(WORKER, /^did:key:zDn/, 'P-256 did:key')
  t.match(readFileSync(dlgFile, 'utf8'), /^C[A-Za-z0-9_-]+\n$/)
  const cid = tokenCid(decodeContainerText(readFileSync(dlgFile, 'utf8').trim())[0]!).toString()
  t.equal(dlgStderr, `delegation CID: ${cid}\n`, 'the CID to list under revoked, on stderr')
})

t.test('an invocation under the delegation is accepted once; identity = scheme:issuer DID; then REPLAYED', async (t) => {
  const auth = await invokeWithCli('/pools/7/preload?mode=warm', '/pool/preload', '{"model":"llama"}')
  const before = backend.requests.length
  const r = await post('/pools/7/preload?mode=warm', auth, '{"model":"llama"}')
  t.equal(r.status, 200, JSON.stringify(r.json))
  const got = backend.requests[before]!
  t.equal(got.headers['x-auth-identity'], `cluster:${WORKER}`)
  t.equal(got.headers['x-auth-method'], 'cluster')
  t.equal(got.headers['x-auth-roles'], 'worker')
  t.equal(got.headers['x-auth-fingerprint'], tokenFingerprint(auth.slice('Bearer '.length)))
  t.equal(got.headers.authorization, undefined, 'the credential is stripped')
  t.equal(got.body.toString(), '{"model":"llama"}')
  const again = await post('/pools/7/preload?mode=warm', auth, '{"model":"llama"}')
  t.equal(again.status, 401)
  t.equal(again.json.code, 'REPLAYED')
  const audit = await gw.waitForLog((l) => l.reason === 'REPLAYED')
  t.equal(audit.identity, `cluster:${WORKER}`)
})

t.test('a command the delegation does not cover → 403 FORBIDDEN, with the identity in the audit line', async (t) => {
  t.throws(() => invokeHeader('/pools/7/drain', '/pool/drain', '{}'), /no proof chain/, 'the client refuses to build an uncovered chain')
  // Forge the invocation with the delegation as its chain anyway: the gateway must refuse it.
  const { invoke, requestArgs } = await import('../../src/ucan/issue.js')
  const { encodeContainer } = await import('../../src/ucan/container.js')
  const { loadPrivateKey } = await import('../../src/ucan/did-key.js')
  const tokens = invoke({ key: loadPrivateKey(readFileSync(workerKey)), sub: ROOT, cmd: '/pool/drain', args: requestArgs('POST', '/pools/7/drain', Buffer.from('{}')), proofs: [], chain: decodeContainerText(readFileSync(dlgFile, 'utf8').trim()), ttlS: 60 })
  const r = await post('/pools/7/drain', 'Bearer ' + encodeContainer(tokens), '{}')
  t.equal(r.status, 403)
  t.equal(r.json.code, 'FORBIDDEN')
  const audit = await gw.waitForLog((l) => l.reason === 'FORBIDDEN')
  t.equal(audit.identity, `cluster:${WORKER}`)
  t.equal(audit.authMethod, 'cluster')
  // A valid /pool/preload invocation sent to the drain route: the route's command is not the invoked one.
  const preload = await invokeHeader('/pools/7/drain', '/pool/preload', '{}')
  const s = await post('/pools/7/drain', preload, '{}')
  t.equal(s.status, 403)
  t.equal(s.json.code, 'FORBIDDEN')
})

t.test('the invocation binds method, path and body: another one is 401 Invalid UCAN', async (t) => {
  const auth = await invokeHeader('/pools/7/preload', '/pool/preload', 'A')
  let r = await post('/pools/7/preload', auth, 'B')
  t.equal(r.status, 401)
  t.same([r.json.code, r.json.error], ['INVALID_CREDENTIALS', 'Invalid UCAN'])
  r = await post('/pools/8/preload', await invokeHeader('/pools/7/preload', '/pool/preload', 'A'), 'A')
  t.same([r.status, r.json.code], [401, 'INVALID_CREDENTIALS'])
  r = await post('/pools/7/preload?x=1', await invokeHeader('/pools/7/preload', '/pool/preload', 'A'), 'A')
  t.same([r.status, r.json.code], [401, 'INVALID_CREDENTIALS'], 'the query is bound too')
  r = await post('/pools/7/preload', 'Bearer Cnot-a-container', 'A')
  t.same([r.status, r.json.code, r.json.error], [401, 'INVALID_CREDENTIALS', 'Invalid UCAN'])
})

t.test('a revoked delegation → KEY_REVOKED; expired or too long-lived invocations → TOKEN_EXPIRED', async (t) => {
  const key = readFileSync(revokedWorkerKey, 'utf8')
  const revoked = ucanInvocation({ key, sub: ROOT, cmd: '/pool/preload', proofs: [revokedDlg], method: 'POST', target: '/pools/7/preload', body: 'x' })
  let r = await post('/pools/7/preload', revoked.authorization, 'x')
  t.same([r.status, r.json.code], [401, 'KEY_REVOKED'])
  const proofs = [readFileSync(dlgFile, 'utf8')]
  const wkey = readFileSync(workerKey, 'utf8')
  const old = ucanInvocation({ key: wkey, sub: ROOT, cmd: '/pool/preload', proofs, method: 'POST', target: '/pools/7/preload', body: 'x', now: Math.floor(Date.now() / 1000) - 600 })
  r = await post('/pools/7/preload', old.authorization, 'x')
  t.same([r.status, r.json.code], [401, 'TOKEN_EXPIRED'])
  const long = ucanInvocation({ key: wkey, sub: ROOT, cmd: '/pool/preload', proofs, method: 'POST', target: '/pools/7/preload', body: 'x', ttlS: 3600 })
  r = await post('/pools/7/preload', long.authorization, 'x')
  t.same([r.status, r.json.code], [401, 'TOKEN_EXPIRED'], 'longer than the window')
})

t.test('ucan invoke --send sends the bound request', async (t) => {
  const r = await runCli(['ucan', 'invoke', '--key', workerKey, '--sub', ROOT, '--cmd', '/pool/preload', '--proof', dlgFile, '-d', 'hello', gw.url + '/pools/9/preload', '--send'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /"body":"hello"/)
})

t.test('config: a route accepting a ucan scheme without `command` is an error naming FILE:LINE:COL', async (t) => {
  const file = writeConfig(config(backend.url, `
  - { path: /pools/:id/preload, upstream: pool-manager, auth: [cluster] }`))
  const r = await runCli(['check', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stderr + r.stdout, /gateway\.yaml:\d+:\d+: .*needs `command`/)
  const bad = writeConfig(config(backend.url, `
  - { path: /pools/:id/preload, upstream: pool-manager, auth: [cluster], command: /Pool/ }`).replace(`revoked: ["${REVOKED_CID}"]`, 'revoked: ["not-a-cid"]'))
  const s = await runCli(['check', '--config', bad])
  t.equal(s.code, 1)
  t.match(s.stderr + s.stdout, /revoked.*token CID|must be a token CID/)
  t.match(s.stderr + s.stdout, /must be a UCAN command/)
})
