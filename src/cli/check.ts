// `portcullis check`: validates exactly as serve does (secrets resolved), prints the compiled route
// table and the lints. Exit 0 when valid (warnings allowed), 1 on any error.
import { loadConfigFile, formatFinding, type Finding } from '../config/load.js'
import { lintGateway } from '../config/lint.js'
import type { Gateway } from '../config/compile.js'
import { configPathFrom, parse } from './args.js'

function table(gw: Gateway): string {
  const rows = [['#', 'METHODS', 'PATH', 'UPSTREAM', 'AUTH', 'ROLES', 'RATE LIMIT']]
  for (const r of gw.routes) {
    const rl = r.rateLimit ? `${r.rateLimit.max}/${r.rateLimit.windowMs / 1000}s by ${r.rateLimit.by}` : '-'
    const auth = r.public ? 'public' : r.auth.map((a) => a.name).join(',') + (r.loopbackAllow ? ',loopback' : '')
    rows.push([
      String(r.index),
      r.methods ? [...r.methods].join(',') : '*',
      (r.spec.prefix !== undefined ? 'prefix ' : '') + r.id + (r.websocket ? ' (websocket)' : ''),
      r.upstream.name + ' ' + r.upstream.origin + r.upstream.basePath,
      auth,
      r.roles ? [...r.roles].join(',') : '-',
      rl,
    ])
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n'
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' } })
  const file = configPathFrom(values.config)
  const result = await loadConfigFile(file)
  const findings: Finding[] = [...result.warnings]
  if (!result.ok) {
    for (const f of [...result.errors, ...findings]) process.stdout.write(formatFinding(f) + '\n')
    return 1
  }
  const gw = result.gateway
  process.stdout.write(table(gw))
  const lines: Finding[] = [...findings]
  for (const lint of lintGateway(gw)) lines.push({ file, ...result.position(lint.path), severity: lint.severity, message: lint.message })
  for (const f of lines) process.stdout.write(formatFinding(f) + '\n')
  const errors = lines.filter((f) => f.severity === 'error').length
  const warnings = lines.length - errors
  process.stdout.write(`${file}: ${errors ? 'invalid' : 'valid'}: ${gw.routes.length} routes, ${errors} errors, ${warnings} warnings\n`)
  return errors ? 1 : 0
}
