// Defaults live in the schema only (config/schema.ts and the methods' parts of it): the loaded config
// has every default the schema declares filled in — inside unions such as `rateLimit: {…} | false` too —
// so compile reads `spec.window`, never `spec.window ?? '5m'`. Walks the schema, so a default added
// there is checked here without touching this file.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { loadConfigText, formatFinding } from '../../../src/config/load.js'
import { GatewayConfigSchema, SCHEME_SCHEMAS } from '../../../src/config/schema.js'

type Schema = { type?: string; properties?: Record<string, Schema>; patternProperties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; default?: unknown }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Paths of keys whose schema declares a default but that the loaded value lacks; `checked` counts the defaults seen. */
function missingDefaults(schema: Schema, value: unknown, path: string, out: { missing: string[]; checked: string[] }): void {
  if (schema.anyOf) {
    // A union: descend into the branch of the value's shape (an object, a list); a scalar has nothing inside.
    for (const branch of schema.anyOf) if ((branch.type === 'object' && isObject(value)) || (branch.type === 'array' && Array.isArray(value))) missingDefaults(branch, value, path, out)
    return
  }
  if (schema.type === 'object' && isObject(value)) {
    for (const [key, part] of Object.entries(schema.properties ?? {})) {
      if ('default' in part) out.checked.push(`${path}.${key}`)
      if (value[key] === undefined) {
        if ('default' in part) out.missing.push(`${path}.${key}`)
        continue
      }
      missingDefaults(part, value[key], `${path}.${key}`, out)
    }
    for (const part of Object.values(schema.patternProperties ?? {})) {
      for (const [key, v] of Object.entries(value)) {
        // A scheme entry is checked against the body of its type, as the loader does.
        const body = path === '.schemes' && isObject(v) && typeof v.type === 'string' ? (SCHEME_SCHEMAS[v.type] as Schema) : part
        missingDefaults(body, v, `${path}.${key}`, out)
      }
    }
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) value.forEach((item, i) => missingDefaults(schema.items!, item, `${path}[${i}]`, out))
}

const S = 'x'.repeat(40)
const ASSERTION_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const ENV = { T: 't' + S, W: 'w' + S, M: 'm' + S, P: 'p' + S, A: ASSERTION_KEY }

/** Every optional section present (so its defaults can be seen), each as small as it may be. */
const FULL = `version: 1
admin: {}
tracing: { otlp: "http://127.0.0.1:4318" }
state: { redis: { url: "redis://127.0.0.1:6379" } }
upstreams: { be: { url: "http://127.0.0.1:9" } }
identities:
  - { name: ops, bearer: "\${env:T}" }
schemes:
  workers: { type: worker-v1, secret: "\${env:W}" }
  signed: { type: rfc9421, derive: "\${env:M}" }
  jobs: { type: jwt, secret: "\${env:W}" }
  cluster: { type: ucan, subjects: ["did:key:z6MkrZ1r5XBFZjBU34qyD8fueMbMRkKw17BZaq2ivKFjnz2z"] }
join: { psk: "\${env:P}", scheme: signed }
routes:
  - { path: /a, upstream: be, auth: [bearer], rateLimit: { max: 5, window: 1m }, concurrency: { max: 2 } }
  - { path: /b, upstream: be, auth: [cluster], command: /run, rateLimit: false }
defaults:
  rateLimit: { max: 9, window: 1m }
  authFailures: { max: 3, window: 1m }
forward:
  assertion: { key: "\${env:A}" }
`

t.test('every default the schema declares is in the loaded config, inside unions too', async (t) => {
  const r = loadConfigText(FULL, 'g.yaml', ENV)
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join(' | '))
  const out = { missing: [] as string[], checked: [] as string[] }
  missingDefaults(GatewayConfigSchema as Schema, r.gateway.raw, '', out)
  t.same(out.missing, [], 'no declared default missing')
  for (const path of ['.server.bufferLimit', '.admin.listen', '.state.redis.prefix', '.upstreams.be.timeout', '.schemes.workers.window', '.schemes.jobs.maxTtl', '.schemes.cluster.bindCertificate', '.join.path', '.routes[0].rateLimit.by', '.routes[0].concurrency.by', '.defaults.rateLimit.by', '.defaults.enforce', '.forward.assertion.ttl', '.tracing.serviceName'])
    t.ok(out.checked.includes(path), `${path} was checked`)
  t.equal(r.gateway.raw.routes[0]!.rateLimit && r.gateway.raw.routes[0]!.rateLimit.by, 'identity', 'a default inside `rateLimit: {…} | false`')
  t.equal(r.gateway.raw.routes[1]!.rateLimit, false, '`false` stays false')
  t.equal(r.gateway.admin?.listen.port, 9901, 'admin.listen')
})

t.test('a section left out gets its defaults; nothing else is added', async (t) => {
  const r = loadConfigText(`version: 1\nupstreams: { be: { url: "http://127.0.0.1:9" } }\nroutes:\n  - { path: /a, upstream: be, public: true }\n`, 'g.yaml', {})
  if (!r.ok) return t.fail(r.errors.map(formatFinding).join(' | '))
  const raw = r.gateway.raw
  t.same(raw.forward, { identityHeaders: true, credentials: 'strip' })
  t.same(raw.defaults, { enforce: 'on' })
  t.same(Object.keys(raw).sort(), ['defaults', 'forward', 'routes', 'server', 'state', 'upstreams', 'version'], 'no admin, tracing, identities, schemes or join appear')
  t.same(raw.routes[0], { path: '/a', upstream: 'be', public: true }, 'a route gets no key it did not have (enforce stays inherited)')
  t.equal(r.gateway.routes[0]!.enforce, 'on')
})

t.test('a section left empty (null in YAML) is read as absent: the rest of the file is still compiled', async (t) => {
  for (const section of ['forward', 'defaults', 'server', 'state']) {
    const r = loadConfigText(`version: 1\nupstreams: { be: { url: "http://127.0.0.1:9" } }\n${section}:\nroutes:\n  - { path: /a, upstream: nope, public: true }\n`, 'g.yaml', {})
    const messages = r.ok ? [] : r.errors.map((e) => e.message)
    t.same(messages, [`${section}: must be object`, 'routes[0].upstream: unknown upstream "nope"'], section)
  }
})
