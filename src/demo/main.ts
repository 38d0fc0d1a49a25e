// `npm run demo`: two stand-in backends, throw-away secrets, the gateway on config/demo.yaml, a tour
// of allowed / denied / replayed / rate-limited / UCAN / report-only requests as a table, the report
// verdict read back from the audit log, then copy-paste curl lines.
// `--once` exits after the tour: 0 only if every step got the status (or verdict) it expected.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import type { Logger } from 'pino'
import { loadConfigFile, formatFinding } from '../config/load.js'
import { createLogger } from '../observe/logger.js'
import { startGateway } from '../process.js'
import { startStandIn } from './backends.js'
import { signRfc9421, signWorkerV1, deriveKey } from '../client/index.js'
import { ucanDid, ucanDelegate, ucanInvocation } from '../client/ucan.js'
import { ReportBuilder, type RouteReport } from '../observe/report.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const DEMO_CONFIG = join(ROOT, 'config', 'demo.yaml')
const once = process.argv.includes('--once')
const redisMode = process.argv.includes('--redis')
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Server = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

/** The root DID config/demo.yaml ships with (its private key was thrown away): this run's replaces it. */
const SHIPPED_ROOT_DID = 'did:key:z6MkmzEPj8yDPhAH7vC6kAsmdXBh6B1ptH3DGXNyRzVDy9z3'

/**
 * This run's copy of config/demo.yaml: the UCAN root DID of this run, and the config's own ports or
 * free ones when those are taken (or PORTCULLIS_DEMO_PORTS=auto).
 */
async function writeConfig(rootDid: string): Promise<{ file: string; ports: Record<number, number> }> {
  const wanted = [8080, 9901, 9000, 9200]
  const auto = process.env.PORTCULLIS_DEMO_PORTS === 'auto' || redisMode
  const ports: Record<number, number> = {}
  for (const p of wanted) {
    ports[p] = !auto && (await portFree(p)) ? p : await freePort()
  }
  let text = readFileSync(DEMO_CONFIG, 'utf8')
  if (!text.includes(SHIPPED_ROOT_DID)) throw new Error(`${DEMO_CONFIG}: the shipped UCAN root DID is missing`)
  text = text.replaceAll(SHIPPED_ROOT_DID, rootDid)
  for (const p of wanted) text = text.replaceAll(`127.0.0.1:${p}`, `127.0.0.1:${ports[p]}`)
  if (redisMode) {
    // Both replicas share one Redis: one replay cache, one set of counters.
    text = text.replace('store: memory', `store: redis\n  redis: { url: "\${env:REDIS_URL}", prefix: "portcullis-demo:${randomBytes(4).toString('hex')}:" }\n  replicas: 2`)
    text = text.replace(/listen: 127\.0\.0\.1:[0-9]+\n/g, 'listen: 127.0.0.1:0\n')
  }
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-demo-')), 'demo.yaml')
  writeFileSync(file, text)
  return { file, ports }
}

interface Reply {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** A request and the status it must get, or (`verdict`) a check whose result is a word, not a status. */
type Step =
  | { what: string; expect: number; send: () => Promise<Reply> }
  | { what: string; expect: string; verdict: () => Promise<{ got: string; note: string }> }

/** The route prefix the demo runs in `enforce: report` (config/demo.yaml). */
const REPORT_ROUTE = '/legacy/'

/** The table's `got` and note for a reply: the error code, or who the backend was told the caller is. */
function describe(r: Reply): { got: number; note: string } {
  const parsed = JSON.parse(r.body || '{}') as { code?: string; identity?: Record<string, string> }
  // A did:key is 56 characters: shortened so the table stays readable.
  const who = parsed.identity?.['x-auth-identity']?.replace(/(did:key:z\w{4})\w+(\w{4})$/, '$1…$2')
  let note = parsed.code ?? (who ? `${who} via ${parsed.identity!['x-auth-method']}` : 'forwarded, no identity')
  if (r.status === 429) note += ` retry-after ${String(r.headers['retry-after'])}s`
  return { got: r.status, note }
}

/**
 * What `portcullis report` says of `route`: the gateway's audit lines so far, flushed to its log
 * file and folded by the same ReportBuilder the command uses. A request's audit line is written
 * when its response finishes, which may be after the client has read it: so the log is re-read
 * until the route shows up, for at most 10 s.
 */
async function reportVerdict(logger: Logger, logFile: string, route: string): Promise<{ got: string; note: string }> {
  let r: RouteReport | undefined
  for (let attempt = 0; attempt < 100 && !r; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100))
    await new Promise<void>((resolve, reject) => logger.flush((err) => (err ? reject(err) : resolve())))
    const builder = new ReportBuilder()
    for (const line of readFileSync(logFile, 'utf8').split('\n')) if (line !== '') builder.addLine(line)
    r = builder.result().routes.find((x) => x.route === route)
  }
  if (!r) return { got: 'no audit line', note: `no audit line of ${route} in ${logFile}` }
  const would = Object.entries(r.wouldRefuse).map(([code, n]) => `${code} x${n}`).join(', ')
  return { got: r.verdict, note: `enforce ${r.enforce}; would refuse ${would || 'nothing'}` }
}

async function main(): Promise<number> {
  const secrets = {
    DEMO_API_TOKEN: randomBytes(32).toString('hex'),
    DEMO_DASHBOARD_KEY: randomBytes(32).toString('hex'),
    DEMO_WORKER_SECRET: randomBytes(32).toString('hex'),
    DEMO_WORKER_MASTER_KEY: randomBytes(32).toString('hex'),
  }
  // UCAN: the cluster's root authority and one worker's key, both Ed25519 and made for this run only.
  // The gateway is told only the root's DID (the scheme's `subjects`); the worker's key never leaves here.
  const ucanRoot = generateKeyPairSync('ed25519').privateKey
  const ucanWorker = generateKeyPairSync('ed25519').privateKey
  const rootDid = ucanDid(ucanRoot)
  Object.assign(process.env, secrets)
  if (redisMode) process.env.REDIS_URL = REDIS_URL
  const { file, ports } = await writeConfig(rootDid)
  const backends = [await startStandIn('orchestrator', ports[9000]!), await startStandIn('pool-manager', ports[9200]!)]
  const loaded = await loadConfigFile(file)
  if (!loaded.ok) {
    for (const f of loaded.errors) process.stderr.write(formatFinding(f) + '\n')
    return 1
  }
  const logFile = join(tmpdir(), `portcullis-demo-${process.pid}.log`)
  const logger = createLogger('info', logFile)
  const gw = await startGateway({ file, gateway: loaded.gateway, logger })
  const replica = redisMode ? await startGateway({ file, gateway: (await loadConfigFile(file) as { gateway: typeof loaded.gateway }).gateway, logger }) : undefined
  const replicaClient = replica ? new Pool(replica.url) : undefined
  const base = gw.url
  const client = new Pool(base)
  const call = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
    // `path` as an option, so the client sends it byte for byte (a URL would resolve dot segments first)
    const res = await client.request({ path, method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) })
    return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
  }
  const bearer = { authorization: `Bearer ${secrets.DEMO_API_TOKEN}` }
  const worker = signWorkerV1({ id: 'worker-1', secret: secrets.DEMO_WORKER_SECRET })
  const worker7Key = deriveKey(secrets.DEMO_WORKER_MASTER_KEY, 'worker-7')
  const preloadBody = JSON.stringify({ model: 'llama-3-8b', replicas: 1 })
  const preloadUrl = `${base}/pools/p1/preload`
  const signed = signRfc9421({ keyId: 'worker-7', secret: worker7Key, method: 'POST', url: preloadUrl, body: preloadBody, headers: { 'content-type': 'application/json' } })
  const signedHeaders = { ...signed, 'content-type': 'application/json' } as Record<string, string>
  // The root delegates /pool/preload (only) to the worker for a day (long enough for the copy-paste
  // line below while the demo keeps serving); the worker invokes it, bound to one request.
  const preloadOnly = ucanDelegate({ key: ucanRoot, aud: ucanDid(ucanWorker), sub: rootDid, cmd: '/pool/preload', ttlS: 86_400 })
  const invoke = (cmd: string, target: string) => ({
    ...ucanInvocation({ key: ucanWorker, sub: rootDid, cmd, proofs: [preloadOnly], method: 'POST', target, body: preloadBody }),
    'content-type': 'application/json',
  })
  const ucanPreload = invoke('/pool/preload', '/v2/pools/p1/preload')

  const steps: Step[] = [
    { what: 'public /health, no credential', expect: 200, send: () => call('GET', '/health') },
    { what: 'heartbeat without a credential', expect: 401, send: () => call('POST', '/v2/nodes/n1/heartbeat') },
    { what: 'heartbeat with a wrong token', expect: 401, send: () => call('POST', '/v2/nodes/n1/heartbeat', { authorization: 'Bearer not-the-token' }) },
    { what: 'heartbeat with the operator token', expect: 200, send: () => call('POST', '/v2/nodes/n1/heartbeat', bearer) },
    { what: 'dashboard key on a worker route (role reader)', expect: 403, send: () => call('POST', '/pools/p1/preload', { 'x-api-key': secrets.DEMO_DASHBOARD_KEY }) },
    { what: 'spoofed x-auth-identity on /health (dropped)', expect: 200, send: () => call('GET', '/health', { 'x-auth-identity': 'admin' }) },
    { what: 'unknown path (never forwarded)', expect: 404, send: () => call('GET', '/admin/secrets', bearer) },
    { what: 'dot-segment path /pools/../admin', expect: 400, send: () => call('GET', '/pools/%2e%2e/admin', bearer) },
    { what: 'bearer and API key together', expect: 401, send: () => call('GET', '/pools/p1/status', { ...bearer, 'x-api-key': secrets.DEMO_DASHBOARD_KEY }) },
    { what: 'worker-v1 heartbeat (worker-1)', expect: 200, send: () => call('POST', '/v2/nodes/n1/heartbeat', { ...worker }) },
    { what: 'the same worker-v1 request replayed', expect: 401, send: () => call('POST', '/v2/nodes/n1/heartbeat', { ...worker }) },
    { what: 'rfc9421 POST /pools/p1/preload (worker-7)', expect: 200, send: () => call('POST', '/pools/p1/preload', signedHeaders, preloadBody) },
    { what: 'the same rfc9421 request replayed', expect: 401, send: () => call('POST', '/pools/p1/preload', signedHeaders, preloadBody) },
    {
      what: 'rfc9421 with a tampered body',
      expect: 401,
      send: () => {
        const h = signRfc9421({ keyId: 'worker-7', secret: worker7Key, method: 'POST', url: preloadUrl, body: preloadBody })
        return call('POST', '/pools/p1/preload', { ...h } as Record<string, string>, preloadBody.replace('1}', '9}'))
      },
    },
    {
      what: 'rfc9421 from revoked worker-3',
      expect: 401,
      send: () => call('GET', '/pools/p1/status', { ...signRfc9421({ keyId: 'worker-3', secret: deriveKey(secrets.DEMO_WORKER_MASTER_KEY, 'worker-3'), method: 'GET', url: `${base}/pools/p1/status` }) } as Record<string, string>),
    },
    { what: 'capabilities 1/3 (limit 3 per minute)', expect: 200, send: () => call('GET', '/v1/capabilities', bearer) },
    { what: 'capabilities 2/3', expect: 200, send: () => call('GET', '/v1/capabilities', bearer) },
    { what: 'capabilities 3/3', expect: 200, send: () => call('GET', '/v1/capabilities', bearer) },
    { what: 'capabilities 4/3: rate limited', expect: 429, send: () => call('GET', '/v1/capabilities', bearer) },
    { what: 'UCAN: worker invokes /pool/preload (delegated by the root)', expect: 200, send: () => call('POST', '/v2/pools/p1/preload', ucanPreload, preloadBody) },
    { what: 'UCAN: the same invocation replayed', expect: 401, send: () => call('POST', '/v2/pools/p1/preload', ucanPreload, preloadBody) },
    // The client will not even build an invocation of /pool/drain from this delegation; a /pool/preload
    // invocation sent to the drain route (command /pool/drain) is how a worker would try its luck.
    { what: 'UCAN: /pool/preload invocation on the /pool/drain route', expect: 403, send: () => call('POST', '/v2/pools/p1/drain', invoke('/pool/preload', '/v2/pools/p1/drain'), preloadBody) },
    { what: `report-only ${REPORT_ROUTE}: no credential, forwarded anyway`, expect: 200, send: () => call('GET', `${REPORT_ROUTE}status`) },
    { what: `portcullis report: verdict for ${REPORT_ROUTE}`, expect: 'not ready', verdict: () => reportVerdict(logger, logFile, REPORT_ROUTE) },
  ]

  if (replica && replicaClient) {
    const w2 = signWorkerV1({ id: 'worker-2', secret: secrets.DEMO_WORKER_SECRET })
    const viaReplica = async () => {
      const res = await replicaClient.request({ path: '/v2/nodes/n2/heartbeat', method: 'POST', headers: { ...w2 } })
      return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
    }
    steps.push(
      { what: `replica A (${base}): worker-v1 heartbeat (worker-2)`, expect: 200, send: () => call('POST', '/v2/nodes/n2/heartbeat', { ...w2 }) },
      { what: `replica B (${replica.url}): the same request`, expect: 401, send: viaReplica },
    )
  }

  const rows: string[][] = [['#', 'request', 'expected', 'got', 'code / identity', '']]
  let failures = 0
  for (const [i, step] of steps.entries()) {
    let got: number | string = 0
    let note = ''
    try {
      ;({ got, note } = 'verdict' in step ? await step.verdict() : describe(await step.send()))
    } catch (err) {
      note = (err as Error).message
    }
    const ok = got === step.expect
    if (!ok) failures++
    rows.push([String(i + 1), step.what, String(step.expect), String(got), note, ok ? 'ok' : 'FAIL'])
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  for (const r of rows) process.stdout.write(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd() + '\n')
  process.stdout.write(`\n${steps.length - failures}/${steps.length} steps got the status they expected. Gateway log: ${logFile}\n`)

  const close = async () => {
    await client.close()
    await replicaClient?.close()
    await replica?.close()
    await gw.close()
    for (const b of backends) b.close()
  }
  if (once) {
    await close()
    return failures === 0 ? 0 : 1
  }
  // The UCAN keys and delegation as files for the CLI line below: owner-only, in a fresh temp dir.
  const ucanDir = mkdtempSync(join(tmpdir(), 'portcullis-demo-ucan-'))
  writeFileSync(join(ucanDir, 'worker.pem'), ucanWorker.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  writeFileSync(join(ucanDir, 'worker.ucan'), preloadOnly + '\n', { mode: 0o600 })
  process.stdout.write(`
The gateway keeps serving on ${base} (Ctrl-C to stop). Try:

  curl -i ${base}/health
  curl -i -X POST ${base}/v2/nodes/n1/heartbeat
  curl -i -X POST -H 'Authorization: Bearer ${secrets.DEMO_API_TOKEN}' ${base}/v2/nodes/n1/heartbeat
  curl -N -H 'Authorization: Bearer ${secrets.DEMO_API_TOKEN}' ${base}/v2/tasks/t1/events
  curl -i --path-as-is ${base}/pools/../admin
  DEMO_WORKER_SECRET=${secrets.DEMO_WORKER_SECRET} node dist/src/cli/main.js sign --scheme worker-v1 --id worker-1 --secret-env DEMO_WORKER_SECRET -X POST ${base}/v2/nodes/n1/heartbeat --send
  curl -i ${base}${REPORT_ROUTE}status    # enforce: report: forwarded, logged as the 401 it would be
  node dist/src/cli/main.js report ${logFile}
  node dist/src/cli/main.js ucan invoke --key ${join(ucanDir, 'worker.pem')} --sub ${rootDid} --cmd /pool/preload --proof ${join(ucanDir, 'worker.ucan')} -X POST -H 'content-type: application/json' -d '${preloadBody}' ${base}/v2/pools/p1/preload --send

(The secrets are throw-away: generated for this run only.)
`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  rmSync(ucanDir, { recursive: true, force: true })
  await close()
  return 0
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`demo failed: ${(err as Error).message}\n`)
    process.exit(1)
  },
)
