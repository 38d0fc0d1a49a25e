// `portcullis check`: validates exactly as serve does (secrets resolved), prints the compiled route
// table (the join endpoint first when configured) and every finding, or with --json one document.
// Exit 0 when valid (warnings allowed), 1 on any error. Never prints a secret (findings name fields).
import { describeRoles } from '../auth/claims.js'
import { loadConfigFile, formatFinding, type Finding } from '../config/load.js'
import { lintFindings } from '../config/lint.js'
import type { Gateway } from '../config/compile.js'
import { configPathFrom, parse } from './args.js'

const USAGE = `usage: portcullis check [--config PATH] [--json]

Validates the config exactly as serve does (secrets resolved, TLS files read), prints the route table and
every finding as FILE:LINE:COL: error|warning: message. --json prints one document instead:
{"valid": bool, "findings": [{"file","line","col","severity","message"}], "routes": [...]}.
Config: --config, then $PORTCULLIS_CONFIG, then ./gateway.yaml. Exit 0 valid (warnings allowed), 1 on any error.
`

/** One row of the route table, as `--json` prints it. */
interface RouteRow {
  index: number | null
  kind: 'join' | 'path' | 'prefix'
  path: string
  methods: string[] | null
  upstream: string | null
  url: string | null
  public: boolean
  auth: string[]
  loopback: boolean
  websocket: boolean
  roles: string[] | null
  rateLimit: { max: number; windowMs: number; by: string } | null
  concurrency: { max: number; by: string } | null
  enforce: 'on' | 'report'
}

function rows(gw: Gateway): RouteRow[] {
  const out: RouteRow[] = []
  // Matched before the routes (DESIGN §3 step 2), so listed first; never forwarded.
  if (gw.join) {
    out.push({ index: null, kind: 'join', path: gw.join.id, methods: ['POST'], upstream: null, url: null, public: false, auth: gw.join.auth.map((a) => a.name), loopback: false, websocket: false, roles: null, rateLimit: gw.defaults.rateLimit ? { max: gw.defaults.rateLimit.max, windowMs: gw.defaults.rateLimit.windowMs, by: 'identity' } : null, concurrency: null, enforce: 'on' })
  }
  for (const r of gw.routes) {
    out.push({
      index: r.index,
      kind: r.spec.prefix !== undefined ? 'prefix' : 'path',
      path: r.id,
      methods: r.methods ? [...r.methods] : null,
      upstream: r.upstream.name,
      url: r.upstream.origin + r.upstream.basePath,
      public: r.public,
      auth: r.auth.map((a) => a.name),
      loopback: r.loopbackAllow,
      websocket: r.websocket,
      roles: r.roles ? describeRoles(r.roles) : null,
      // `by: identity` on a public route counts per client address: say what it does.
      rateLimit: r.rateLimit ? { max: r.rateLimit.max, windowMs: r.rateLimit.windowMs, by: r.public ? 'ip' : r.rateLimit.by } : null,
      concurrency: r.concurrency ? { max: r.concurrency.max, by: r.public ? 'ip' : r.concurrency.by } : null,
      enforce: r.enforce,
    })
  }
  return out
}

function table(list: RouteRow[]): string {
  const text = [['#', 'METHODS', 'PATH', 'UPSTREAM', 'AUTH', 'ROLES', 'RATE LIMIT', 'ENFORCE']]
  for (const r of list) {
    const rl = r.rateLimit ? `${r.rateLimit.max}/${r.rateLimit.windowMs / 1000}s by ${r.rateLimit.by}` : '-'
    const auth = r.public ? 'public' : r.auth.join(',') + (r.loopback ? ',loopback' : '')
    text.push([
      r.index === null ? '-' : String(r.index),
      r.methods ? r.methods.join(',') : '*',
      (r.kind === 'prefix' ? 'prefix ' : '') + r.path + (r.websocket ? ' (websocket)' : '') + (r.kind === 'join' ? ' (join endpoint)' : ''),
      r.upstream === null ? '- (answered by the gateway)' : `${r.upstream} ${r.url}`,
      auth,
      r.roles ? r.roles.join(',') : '-',
      rl + (r.concurrency ? `, ${r.concurrency.max} at once by ${r.concurrency.by}` : ''),
      r.enforce,
    ])
  }
  const widths = text[0]!.map((_, c) => Math.max(...text.map((row) => row[c]!.length)))
  return text.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n'
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } })
  if (values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  const file = configPathFrom(values.config)
  const result = await loadConfigFile(file)
  const findings: Finding[] = result.ok ? [...result.warnings, ...lintFindings(result.gateway, result.position)] : [...result.errors, ...result.warnings]
  const routes = result.ok ? rows(result.gateway) : []
  const errors = findings.filter((f) => f.severity === 'error').length
  const valid = errors === 0
  if (values.json) {
    const doc = { valid, findings: findings.map((f) => ({ file: f.file, line: f.line, col: f.col, severity: f.severity, message: f.message })), routes }
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
    return valid ? 0 : 1
  }
  if (result.ok) process.stdout.write(table(routes))
  for (const f of findings) process.stdout.write(formatFinding(f) + '\n')
  if (result.ok) {
    const warnings = findings.length - errors
    process.stdout.write(`${file}: ${valid ? 'valid' : 'invalid'}: ${result.gateway.routes.length} routes, ${errors} errors, ${warnings} warnings\n`)
  }
  return valid ? 0 : 1
}
