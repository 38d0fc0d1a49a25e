// The deployment files, checked by reading them (no Docker engine or cluster here): every YAML document
// in deploy/ parses, the config embedded in the ConfigMap loads as `serve` would, the Deployment wires
// the secrets, probes and config mount the config expects, the Dockerfile has its stages, USER and
// HEALTHCHECK, and the systemd unit reloads with SIGHUP and stops with SIGTERM.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { loadConfigText } from '../../../src/config/load.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const DEPLOY = join(ROOT, 'deploy')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p) : [p]
  })
}

type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

function documents(): Array<{ file: string; doc: Doc }> {
  const out: Array<{ file: string; doc: Doc }> = []
  // Kubernetes manifests; deploy/prometheus holds Prometheus rule files, checked in observability.test.ts.
  for (const file of files(join(DEPLOY, 'kubernetes')).filter((f) => /\.ya?ml$/.test(f))) {
    for (const d of parseAllDocuments(readFileSync(file, 'utf8'))) {
      if ('errors' in d && d.errors.length) throw new Error(`${relative(ROOT, file)}: ${d.errors[0]!.message}`)
      const doc = d.toJS() as Doc | null
      if (doc !== null) out.push({ file: relative(ROOT, file), doc })
    }
  }
  return out
}

/** Every `${env:NAME}` the config refers to. */
function envRefs(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!))]
}

t.test('every YAML document in deploy/ parses and is a Kubernetes object', async (t) => {
  const docs = documents()
  t.ok(docs.length >= 3, `${docs.length} documents`)
  for (const { file, doc } of docs) {
    t.type(doc.apiVersion, 'string', `${file}: ${doc.kind} has apiVersion`)
    t.type(doc.kind, 'string', `${file}: has kind`)
    t.type(doc.metadata?.name, 'string', `${file}: ${doc.kind} has a name`)
  }
})

t.test('sidecar: the ConfigMap config loads, and the Deployment matches it', async (t) => {
  const docs = documents().map((d) => d.doc)
  const configMap = docs.find((d) => d.kind === 'ConfigMap')!
  const deployment = docs.find((d) => d.kind === 'Deployment')!
  const service = docs.find((d) => d.kind === 'Service')!
  t.ok(configMap && deployment && service, 'ConfigMap, Deployment and Service')

  const text = configMap.data['gateway.yaml'] as string
  const refs = envRefs(text)
  t.ok(refs.length > 0, 'secrets are references')
  const env = Object.fromEntries(refs.map((name) => [name, `stub-${name}-`.padEnd(40, 'x')]))
  const loaded = loadConfigText(text, '/etc/portcullis/gateway.yaml', env)
  t.ok(loaded.ok, loaded.ok ? 'the embedded config loads' : loaded.errors.map((e) => e.message).join('\n'))
  if (!loaded.ok) return
  const gw = loaded.gateway

  const spec = deployment.spec.template.spec
  const gateway = (spec.containers as Doc[]).find((c) => c.name === 'portcullis')!
  const backend = (spec.containers as Doc[]).find((c) => c.name !== 'portcullis')!
  t.ok(gateway, 'a portcullis container')
  t.ok(backend, 'a backend container beside it')
  t.same(backend.ports ?? [], [], 'the backend exposes no port: the gateway is the only way in')
  for (const u of gw.upstreams.values()) t.match(u.origin, /^http:\/\/127\.0\.0\.1:/, `upstream ${u.name} is on the pod's loopback`)

  // Secrets: every reference in the config comes from the Secret through env, and none is inlined.
  const envVars = new Map((gateway.env as Doc[]).map((e) => [e.name, e]))
  for (const name of refs) {
    const e = envVars.get(name)
    t.ok(e?.valueFrom?.secretKeyRef?.name, `${name} comes from a Secret`)
    t.notOk(e && 'value' in e, `${name} is not inlined`)
  }
  t.equal(envVars.get('PORTCULLIS_CONFIG')?.value, '/etc/portcullis/gateway.yaml')

  // Ports and probes line up with the config's listeners.
  const ports = new Map((gateway.ports as Doc[]).map((p) => [p.name, p.containerPort]))
  t.equal(ports.get('http'), gw.server.listen.port, 'containerPort http = server.listen')
  t.equal(ports.get('admin'), gw.admin?.listen.port, 'containerPort admin = admin.listen')
  t.equal(gw.server.listen.host, '0.0.0.0', 'the proxy listens on the pod IP')
  t.equal(gw.admin?.listen.host, '0.0.0.0', 'the admin listener is reachable by the kubelet')
  t.same(gateway.readinessProbe.httpGet, { path: '/readyz', port: 'admin' })
  t.same(gateway.livenessProbe.httpGet, { path: '/healthz', port: 'admin' })

  // The config mount: the whole directory (never subPath), so ConfigMap updates reach the file watcher.
  const mount = (gateway.volumeMounts as Doc[]).find((m) => m.mountPath === '/etc/portcullis')!
  t.ok(mount, 'config mounted at /etc/portcullis')
  t.notOk(mount.subPath, 'no subPath: a subPath mount never sees ConfigMap updates')
  const volume = (spec.volumes as Doc[]).find((v) => v.name === mount.name)!
  t.equal(volume.configMap.name, configMap.metadata.name)
  t.same(volume.configMap.items, [{ key: 'gateway.yaml', path: 'gateway.yaml' }])

  // Shutdown: the pod's grace outlasts server.shutdownGrace plus the preStop pause.
  const preStop = Number(gateway.lifecycle?.preStop?.exec?.command?.[1] ?? 0)
  t.ok(spec.terminationGracePeriodSeconds * 1000 > gw.server.shutdownGraceMs + preStop * 1000, 'terminationGracePeriodSeconds covers the drain')
  t.equal(gateway.securityContext.runAsUser, 10001, 'runs as the image user')
  t.equal(spec.securityContext.runAsNonRoot, true)
  t.equal(gateway.securityContext.readOnlyRootFilesystem, true)
  t.same(
    (service.spec.ports as Doc[]).map((p) => p.targetPort),
    ['http', 'admin'],
    'the Service reaches only the gateway',
  )
})

t.test('Dockerfile: stages, non-root USER, HEALTHCHECK with node reading the config', async (t) => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const lines = text.split('\n').filter((l) => l.trim() && !l.trimStart().startsWith('#'))
  const from = lines.filter((l) => /^FROM /.test(l))
  t.ok(from.length >= 2, 'multi-stage')
  t.match(from[0], /^FROM node:20-slim AS build$/)
  t.match(from.at(-1), /^FROM node:20-slim AS runtime$/)
  t.ok(lines.some((l) => /^RUN npm ci\b/.test(l)), 'npm ci')
  t.ok(lines.some((l) => /npm prune --omit=dev/.test(l)), 'dev dependencies pruned')
  t.ok(lines.some((l) => /^COPY --from=build /.test(l)), 'the runtime copies from the build stage')
  const user = lines.filter((l) => /^USER /.test(l)).at(-1)
  t.ok(user, 'a USER line')
  t.notMatch(user, /^USER (root|0)(:|$)/, 'not root')
  const healthcheck = text.slice(text.indexOf('\nHEALTHCHECK') + 1)
  t.match(healthcheck, /^HEALTHCHECK .*\\\n\s+CMD \["node", "\/app\/dist\/src\/cli\/healthcheck\.js"\]/m, 'HEALTHCHECK runs the node script that reads the config')
  t.notMatch(healthcheck.split('\n').slice(0, 2).join('\n'), /9901|8080/, 'no port hard-coded in the HEALTHCHECK')
  t.notOk(lines.some((l) => /\bcurl\b|\bwget\b/.test(l)), 'no curl or wget')
  t.ok(lines.some((l) => /PORTCULLIS_CONFIG=\/etc\/portcullis\/gateway\.yaml/.test(l)), 'config path')
  t.ok(lines.some((l) => /^EXPOSE 8080 9901$/.test(l)), 'EXPOSE 8080 9901')
  t.ok(lines.some((l) => /^ENTRYPOINT \["node", "\/app\/dist\/src\/cli\/main\.js"\]$/.test(l)))

  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
  for (const entry of ['node_modules', '.git', 'dist', 'gateway.yaml']) t.ok(ignore.includes(entry), `.dockerignore has ${entry}`)
})

t.test('systemd unit: SIGHUP reload, SIGTERM stop, non-root, config path', async (t) => {
  const text = readFileSync(join(DEPLOY, 'systemd', 'portcullis.service'), 'utf8')
  const keys = new Map<string, string[]>()
  let section = ''
  const malformed: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const s = /^\[(.+)\]$/.exec(line)
    if (s) {
      section = s[1]!
      continue
    }
    const eq = line.indexOf('=')
    if (eq <= 0) malformed.push(line)
    const key = `${section}.${line.slice(0, eq)}`
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)])
  }
  t.same(malformed, [], 'every line is a section, a comment or key=value')
  t.same([...new Set([...keys.keys()].map((k) => k.split('.')[0]))], ['Unit', 'Service', 'Install'])
  t.match(keys.get('Service.ExecStart')?.[0], /main\.js serve$/)
  t.equal(keys.get('Service.ExecReload')?.[0], '/bin/kill -HUP $MAINPID')
  t.equal(keys.get('Service.KillSignal')?.[0], 'SIGTERM')
  t.equal(keys.get('Service.User')?.[0], 'portcullis')
  t.ok(Number.parseInt(keys.get('Service.TimeoutStopSec')?.[0] ?? '0') > 10, 'stop timeout above the default shutdownGrace')
  t.ok(keys.get('Service.Environment')?.includes('PORTCULLIS_CONFIG=/etc/portcullis/gateway.yaml'))
  t.equal(keys.get('Install.WantedBy')?.[0], 'multi-user.target')
})
