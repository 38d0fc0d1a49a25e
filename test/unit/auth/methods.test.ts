// The auth-method registry (src/auth/methods.ts), iterated rather than listed, so a method added there is
// covered here without touching this file: its credential headers are stripped before forwarding and
// redacted in logs, the schema has its part, any two kinds of credential are ambiguous, every compiled
// authenticator reads its own descriptor's credential, and no scheme may take a built-in method's name.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { BUILT_IN_METHOD_NAMES, CREDENTIALS, CREDENTIAL_HEADERS, IDENTITY_METHODS, JOIN, LOOPBACK, SCHEME_TYPES } from '../../../src/auth/methods.js'
import { SCHEME_SCHEMAS } from '../../../src/config/schema.js'
import { gatewayJsonSchema } from '../../../src/cli/schema.js'
import { loadConfigText, formatFinding } from '../../../src/config/load.js'
import type { CompiledRoute } from '../../../src/config/compile.js'
import { createLogger } from '../../../src/observe/logger.js'
import { checkCredentials } from '../../../src/steps/authenticate.js'
import { forwardRequest } from '../../../src/steps/forward.js'
import { checkPath, findRoute } from '../../../src/steps/route.js'
import type { ForwardRequest, UpstreamPools } from '../../../src/proxy/forward.js'
import { signWorkerV1 } from '../../../src/client/worker-v1.js'
import { ENV, OPS_TOKEN, READER_TOKEN, WORKER_SECRET, exchangeFor, fakeRequest, loadGateway, testRuntime } from '../steps/fakes.js'

/** Makes every registered presence check say yes: a bearer token, a non-empty key, a header that is there. */
const ANY_VALUE = 'Bearer t0k3n'
const DID = 'did:key:z6MkrZ1r5XBFZjBU34qyD8fueMbMRkKw17BZaq2ivKFjnz2z'

const CONFIG = `version: 1
server: { listen: 127.0.0.1:0 }
upstreams: { be: { url: "http://127.0.0.1:9" } }
identities:
  - { name: ops, roles: [admin], bearer: "\${env:OPS_TOKEN}" }
  - { name: dash, roles: [reader], apiKey: "\${env:READER_TOKEN}", apiKeyHeader: X-Dash-Key }
schemes:
  workers: { type: worker-v1, secret: "\${env:WORKER_SECRET}" }
  signed: { type: rfc9421, derive: "\${env:MASTER}" }
  jobs: { type: jwt, secret: "\${env:WORKER_SECRET}" }
  cluster: { type: ucan, subjects: ["${DID}"] }
join: { psk: "\${env:JOIN_PSK}", scheme: signed }
routes:
  - { path: /open, upstream: be, public: true }
  - { path: /kept, upstream: be, public: true, forward: { credentials: keep } }
  - { path: /ops, upstream: be, auth: [bearer, apiKey, workers, signed, jobs] }
  - { path: /cmd, upstream: be, auth: [cluster], command: /run }
`

/** Every header a registered method's credential rides in, and the API-key header this config adds. */
const registryHeaders = [...IDENTITY_METHODS, ...SCHEME_TYPES, JOIN].flatMap((m) => m.credential.headers)
const CONFIGURED = 'x-dash-key'

t.test('the registry lists each method once and every credential header is lower case', async (t) => {
  for (const name of ['bearer', 'apiKey', 'mtls']) t.ok(IDENTITY_METHODS.some((m) => m.name === name), name)
  for (const type of ['worker-v1', 'rfc9421', 'jwt', 'ucan']) t.ok(SCHEME_TYPES.some((s) => s.type === type), type)
  t.equal(new Set(IDENTITY_METHODS.map((m) => m.name)).size, IDENTITY_METHODS.length)
  t.equal(new Set(SCHEME_TYPES.map((s) => s.type)).size, SCHEME_TYPES.length)
  t.same([...new Set(registryHeaders)].sort(), [...CREDENTIAL_HEADERS].sort(), 'CREDENTIAL_HEADERS is exactly the methods\' headers')
  for (const h of CREDENTIAL_HEADERS) t.equal(h, h.toLowerCase(), h)
  t.equal(new Set(CREDENTIALS.map((c) => c.kind)).size, CREDENTIALS.length, 'one credential per kind')
})

t.test('every registered method\'s credential headers (and a configured apiKeyHeader) are dropped before forwarding', async (t) => {
  const gw = loadGateway(CONFIG)
  const rt = await testRuntime(gw)
  const sent: ForwardRequest[] = []
  rt.pools = {
    async forward(f: ForwardRequest) {
      sent.push(f)
      return { started: false, error: 'UPSTREAM_UNAVAILABLE' }
    },
  } as unknown as UpstreamPools
  const forwarded = async (url: string, header: string) => {
    const { x } = exchangeFor(rt, fakeRequest({ url, headers: [[header, ANY_VALUE]] }))
    if (checkPath(x, x.req!) || findRoute(x)) throw new Error(`no route for ${url}`)
    await forwardRequest(x, x.req!, {} as ServerResponse, x.route as CompiledRoute)
    return sent.at(-1)!.headers
  }
  t.ok(registryHeaders.length >= 7, 'the registry names credential headers')
  for (const h of [...registryHeaders, CONFIGURED]) {
    t.equal((await forwarded('/open', h))[h], undefined, `${h} stripped (credentials: strip)`)
    t.equal((await forwarded('/kept', h))[h], ANY_VALUE, `${h} kept on a credentials: keep route`)
  }
  t.equal((await forwarded('/open', 'x-other'))['x-other'], ANY_VALUE, 'a header no method reads is forwarded')
})

t.test('every registered method\'s credential headers are redacted in logs', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-redact-')), 'log.jsonl')
  const logger = createLogger('info', file)
  const secret = 'never-in-a-log-' + 'f00d'.repeat(8)
  const headers = Object.fromEntries([...registryHeaders, 'x-other'].map((h) => [h, secret + h]))
  logger.info({ headers, req: { headers } }, 'with headers')
  // The destination opens the file asynchronously: wait (bounded) for the line to be there.
  let text = ''
  for (let i = 0; i < 500 && !text.endsWith('\n'); i++) {
    await new Promise<void>((resolve) => logger.flush(() => resolve()))
    text = existsSync(file) ? readFileSync(file, 'utf8') : ''
    if (!text.endsWith('\n')) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const line = JSON.parse(text.trim()) as { headers: Record<string, string>; req: { headers: Record<string, string> } }
  for (const h of registryHeaders) {
    t.equal(line.headers[h], '[redacted]', `headers.${h}`)
    t.equal(line.req.headers[h], '[redacted]', `req.headers.${h}`)
  }
  t.equal(line.headers['x-other'], secret + 'x-other', 'a header no method reads is logged as is')
})

t.test('the schema has the part of every registered method', async (t) => {
  t.same(Object.keys(SCHEME_SCHEMAS).sort(), SCHEME_TYPES.map((s) => s.type).sort(), 'one scheme body per type')
  const json = gatewayJsonSchema() as { properties: Record<string, Record<string, unknown>> }
  const schemes = json.properties.schemes as { patternProperties: Record<string, { oneOf: Array<{ properties: { type: { const: string } } }> }> }
  const bodies = Object.values(schemes.patternProperties)[0]!.oneOf
  t.same(bodies.map((b) => b.properties.type.const).sort(), SCHEME_TYPES.map((s) => s.type).sort(), 'portcullis schema: one body per type')
  // Each type's body is validated by its own schema: an unknown key in it is an error at that key.
  for (const s of SCHEME_TYPES) {
    const r = loadConfigText(`version: 1\nupstreams: {}\nroutes: []\nschemes:\n  s1: { type: ${s.type}, bogus: 1 }\n`, 'g.yaml', {})
    t.equal(r.ok, false, s.type)
    if (!r.ok) t.ok(r.errors.some((e) => /schemes\.s1\.bogus: unknown key "bogus"/.test(e.message)), `${s.type}: ${r.errors.map(formatFinding).join(' | ')}`)
  }
  const identity = (json.properties.identities as { items: { properties: Record<string, unknown> } }).items.properties
  for (const m of IDENTITY_METHODS) for (const f of Object.keys(m.fields)) t.ok(identity[f], `identities[].${f} (${m.name})`)
  const route = (json.properties.routes as { items: { properties: Record<string, unknown> } }).items.properties
  for (const f of Object.keys(LOOPBACK.fields)) t.ok(route[f], `routes[].${f}`)
  t.ok(json.properties[JOIN.key], JOIN.key)
})

t.test('any two registered kinds of credential in one request are ambiguous; two fields of a one-header kind too', async (t) => {
  const gw = loadGateway(CONFIG)
  const rt = await testRuntime(gw)
  const inHeaders = CREDENTIALS.filter((c) => c.headers.length > 0)
  for (const kind of ['bearer', 'apiKey', 'worker-v1', 'signature']) t.ok(inHeaders.some((c) => c.kind === kind), `${kind} rides in headers`)
  t.notOk(inHeaders.some((c) => c.kind === 'mtls'), 'a client certificate never counts')
  const carrying = (...kinds: typeof inHeaders) => fakeRequest({ url: '/ops', headers: kinds.flatMap((c) => c.headers.map((h) => [h, ANY_VALUE] as [string, string])) })
  const refusal = async (req: ReturnType<typeof fakeRequest>) => {
    const { x } = exchangeFor(rt, req)
    if (checkPath(x, req) || findRoute(x)) throw new Error('no route')
    return (await checkCredentials(x, req))?.code
  }
  for (const a of inHeaders) {
    t.same(gw.credentials.present(carrying(a)), new Set([a.kind]), `${a.kind} alone is one kind`)
    t.not(await refusal(carrying(a)), 'AMBIGUOUS_CREDENTIALS', `${a.kind} alone is not ambiguous`)
    for (const b of inHeaders) {
      if (b === a) continue
      t.same(gw.credentials.present(carrying(a, b)), new Set([a.kind, b.kind]), `${a.kind} + ${b.kind}`)
      t.equal(await refusal(carrying(a, b)), 'AMBIGUOUS_CREDENTIALS', `${a.kind} + ${b.kind} → 401 AMBIGUOUS_CREDENTIALS`)
    }
    if (a.single) t.equal(await refusal(fakeRequest({ url: '/ops', headers: [[a.headers[0]!, ANY_VALUE], [a.headers[0]!, ANY_VALUE]] })), 'AMBIGUOUS_CREDENTIALS', `two ${a.headers[0]} fields`)
  }
  // The API-key headers the config adds count as API-key headers: one in each is two keys.
  t.equal(gw.credentials.present(fakeRequest({ headers: [['x-api-key', 'a'], ['X-Dash-Key', 'b']] })), 'duplicate')
  t.same(gw.credentials.present(fakeRequest({ headers: [['X-Dash-Key', 'b']] })), new Set(['apiKey']))
  // A valid credential next to another kind is still refused: ambiguity is decided before any check.
  const worker = Object.entries(signWorkerV1({ id: 'w1', secret: WORKER_SECRET }))
  t.equal(await refusal(fakeRequest({ url: '/ops', headers: [['authorization', `Bearer ${OPS_TOKEN}`], ...worker] })), 'AMBIGUOUS_CREDENTIALS')
  t.equal(await refusal(fakeRequest({ url: '/ops', headers: [['x-dash-key', READER_TOKEN]] })), undefined, 'the configured header alone authenticates')
})

t.test('every compiled authenticator reads its own descriptor\'s credential', async (t) => {
  const gw = loadGateway(CONFIG)
  const descriptor = new Map<string, { credential: { kind: string; headers: readonly string[] } }>([
    ...IDENTITY_METHODS.map((m) => [m.name, m] as const),
    ...Object.entries(gw.raw.schemes ?? {}).map(([name, spec]) => [name, SCHEME_TYPES.find((s) => s.type === spec.type)!] as const),
  ])
  t.same([...gw.authenticators.keys()].sort(), ['apiKey', 'bearer', 'cluster', 'jobs', 'signed', 'workers'])
  for (const [name, a] of gw.authenticators) {
    t.equal(a.kind, descriptor.get(name)!.credential.kind, `${name}: kind`)
    for (const h of descriptor.get(name)!.credential.headers) if (name !== 'apiKey') t.ok(a.credentialHeaders.includes(h), `${name}: ${h}`)
    for (const h of a.credentialHeaders) t.ok(gw.credentials.headers.has(h), `${name}: ${h} is stripped`)
  }
  t.same(gw.join!.auth.map((a) => a.kind), [JOIN.credential.kind], 'the join route reads the join credential')
})

t.test('a scheme named like a built-in method is refused: a scheme called loopback skipped the role check of its signers', async (t) => {
  for (const name of ['apiKey', 'bearer', 'loopback', 'mtls']) t.ok(BUILT_IN_METHOD_NAMES.includes(name), name)
  for (const name of BUILT_IN_METHOD_NAMES) {
    const r = loadConfigText(
      `version: 1\nupstreams: { be: { url: "http://127.0.0.1:9" } }\nschemes:\n  ${name}: { type: worker-v1, secret: "\${env:WORKER_SECRET}" }\nroutes:\n  - { path: /admin, upstream: be, auth: [${name}], roles: [admin] }\n`,
      'g.yaml',
      ENV,
    )
    t.equal(r.ok, false, name)
    if (!r.ok) t.match(r.errors[0]!.message, `schemes.${name}: scheme name "${name}" is reserved for a built-in method`)
  }
})
