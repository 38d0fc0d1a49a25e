// deploy/prometheus (alert rules) and deploy/grafana (dashboard), checked against the metrics the gateway
// really exports: every name they query is registered by createMetrics(). promtool (Debian's prometheus
// package) checks and unit-tests the rules when it is installed; without it a structural check runs.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { createMetrics } from '../../../src/observe/metrics.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const RULES = join(ROOT, 'deploy', 'prometheus', 'portcullis-alerts.yaml')
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'portcullis-dashboard.json')

/** Every series name /metrics can show (a histogram's _bucket, _count and _sum too). */
async function exportedNames(): Promise<Set<string>> {
  const all = (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()) as unknown as Array<{ name: string; type: string }>
  return new Set(all.flatMap((m) => (m.type === 'histogram' ? [m.name, `${m.name}_bucket`, `${m.name}_count`, `${m.name}_sum`] : [m.name])))
}

function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bportcullis_[a-z_]+\b/g)].map((m) => m[0]))]
}

interface Rule {
  alert?: string
  expr?: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

t.test('alert rules: the five alerts, well-formed, on metrics the gateway exports', async (t) => {
  const exported = await exportedNames()
  const doc = parseYaml(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }
  const rules = doc.groups.flatMap((g) => g.rules)
  t.same(rules.map((r) => r.alert).sort(), [
    'PortcullisAuthFailureSpike',
    'PortcullisConfigReloadFailed',
    'PortcullisHighErrorRate',
    'PortcullisRotatedCredentialUnused',
    'PortcullisStoreUnavailable',
  ])
  for (const r of rules) {
    t.type(r.expr, 'string', `${r.alert}: expr`)
    t.match(r.labels?.severity, /^(critical|warning|info)$/, `${r.alert}: severity`)
    t.type(r.annotations?.summary, 'string', `${r.alert}: summary`)
    if (r.for !== undefined) t.match(r.for, /^[0-9]+[smhd]$/, `${r.alert}: for`)
    const names = metricNames(r.expr!)
    t.ok(names.length > 0, `${r.alert} queries portcullis metrics`)
    for (const n of names) t.ok(exported.has(n), `${r.alert}: ${n} is exported`)
  }
  t.match(rules.find((r) => r.alert === 'PortcullisAuthFailureSpike')!.expr, /sum by \(route\)/, 'auth failures per route')
})

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' })
const noPromtool = promtool.error ? 'promtool not installed (apt-get install prometheus)' : false

t.test('promtool check rules and promtool test rules', { skip: noPromtool }, async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
  t.match(check.stdout, /SUCCESS: 5 rules found/)
  const unit = spawnSync('promtool', ['test', 'rules', 'portcullis-alerts.test.yaml'], { cwd: dirname(RULES), encoding: 'utf8' })
  t.equal(unit.status, 0, unit.stdout + unit.stderr)
})

t.test('Grafana dashboard: parses, panels with queries, every metric it names is exported', async (t) => {
  const exported = await exportedNames()
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    title: string
    uid: string
    schemaVersion: number
    templating: { list: Array<{ name: string }> }
    panels: Array<{ id: number; title: string; type: string; gridPos: { w: number; h: number }; targets: Array<{ expr: string; refId: string }> }>
  }
  t.equal(dash.title, 'portcullis')
  t.match(dash.uid, /^[a-z0-9-]{1,40}$/)
  t.ok(dash.schemaVersion >= 30)
  t.ok(dash.templating.list.some((v) => v.name === 'datasource'), 'the data source is a variable, not a fixed uid')
  t.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'panel ids unique')
  const queried = new Set<string>()
  for (const p of dash.panels) {
    t.ok(p.targets.length > 0, `${p.title}: has a query`)
    for (const q of p.targets) for (const n of metricNames(q.expr)) queried.add(n)
  }
  for (const n of queried) t.ok(exported.has(n), `${n} is exported`)
  for (const n of ['portcullis_requests_total', 'portcullis_auth_decisions_total', 'portcullis_request_duration_seconds_bucket', 'portcullis_requests_in_flight', 'portcullis_credential_last_used_timestamp_seconds', 'portcullis_config_reloads_total', 'portcullis_build_info']) {
    t.ok(queried.has(n), `the dashboard shows ${n}`)
  }
})
