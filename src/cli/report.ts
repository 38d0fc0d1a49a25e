// `portcullis report [FILE...] [--json]`: the checklist for switching routes from `enforce: report`
// to `on` (DESIGN §1, §3.2), read from audit logs as a stream. Never holds a whole log or an
// unbounded line in memory, and never prints a log's control characters to the terminal.
import { open, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { ReportBuilder, type Report, type ReportClient, type RouteReport } from '../observe/report.js'
import { parse, UsageError } from './args.js'

export const HELP = `usage: portcullis report [FILE...] [--json]

Reads audit lines (portcullis's JSON log, one line each) from the FILEs, or from stdin when none is
given ("-" also means stdin), and prints per route the checklist for switching it from
"enforce: report" to "enforce: on". Logs of several replicas may be given together: they are merged.
Lines that are not audit lines (npm banners, other loggers, log lines other than msg "auth",
broken JSON, lines over 64 KiB) are skipped and counted.

Per route:
  requests       audit lines of the route
  enforce        the mode the log shows: report (would-be refusals seen), on (auth refusals sent),
                 mixed (both: the route was switched during the period), unknown (neither)
  would refuse   requests that enforce: on would have refused (event "report"), by reason, with
                 the clients behind each: the identity, or the ip when none was verified (with
                 the name it claimed, if any), and the credential fingerprint fp
  refused        refusals actually sent (enforced routes, and the checks every route enforces:
                 method, body size), listed separately with their clients
  verdict        "ready" when no request would have been refused, else "not ready"
Requests that matched no route (404, 400 BAD_PATH, ...) are summed on their own line.
The 10 most frequent clients are listed per route and reason, the rest summed; at most 200
distinct clients are tracked per route and reason, beyond which listed counts are lower bounds.

--json prints one document:
  {"routes":[{"route","requests","enforce","events":{"allow","deny","ratelimit","replay","report"},
    "wouldRefuse":{CODE:n},"clients":[{"identity"|"ip","fp","claimed"?,"reason","count","last"}],
    "unlistedClients":{CODE:n},"refused":{CODE:n},"refusedClients":[...],
    "unlistedRefusedClients":{CODE:n},"countsApproximate","verdict":"ready"|"not ready"}],
   "unmatched":{"requests","refused":{CODE:n}},"lines":{"audit","skipped"},"period":{"from","to"}}

Exit 0 when the report was produced (whatever the verdicts), 1 when a FILE cannot be read,
2 on a usage error.
`

/** Far above any audit line: a longer "line" (a binary file, a runaway logger) is dropped unread. */
export const MAX_LINE = 64 * 1024

/** Splits a byte stream into lines, holding at most `maxLine` bytes of an unfinished line. */
export function lineSplitter(onLine: (line: string) => void, onTooLong: () => void, maxLine = MAX_LINE) {
  let parts: Buffer[] = []
  let held = 0
  let dropping = false
  const emit = (last: Buffer, from: number, to: number) => {
    if (held + (to - from) > maxLine) dropping = true
    if (dropping) {
      onTooLong()
    } else {
      let line = held === 0 ? last.toString('utf8', from, to) : Buffer.concat([...parts, last.subarray(from, to)]).toString('utf8')
      if (line.endsWith('\r')) line = line.slice(0, -1)
      onLine(line)
    }
    parts = []
    held = 0
    dropping = false
  }
  return {
    push(chunk: Buffer): void {
      let at = 0
      for (let nl = chunk.indexOf(10, at); nl !== -1; nl = chunk.indexOf(10, at)) {
        emit(chunk, at, nl)
        at = nl + 1
      }
      if (at >= chunk.length || dropping) return
      if (held + chunk.length - at > maxLine) {
        dropping = true
        parts = []
        held = 0
        return
      }
      parts.push(chunk.subarray(at))
      held += chunk.length - at
    },
    end(): void {
      if (held > 0 || dropping) emit(Buffer.alloc(0), 0, 0)
    },
  }
}

async function readInto(builder: ReportBuilder, input: Readable): Promise<void> {
  const split = lineSplitter(
    (line) => {
      if (line.trim() !== '') builder.addLine(line)
    },
    () => builder.skip(),
  )
  for await (const chunk of input) split.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  split.end()
}

class UnreadableFile extends Error {}

/** Builds the report from the named files ("-" = stdin) or stdin; an unreadable file throws, naming it. */
export async function buildReport(files: string[], stdin: () => Readable, builder = new ReportBuilder()): Promise<Report> {
  const sources = files.length === 0 ? ['-'] : files
  // Open every file before reading any, so a typo in the third name fails at once, not after two logs.
  const handles: (FileHandle | null)[] = []
  try {
    for (const f of sources) {
      if (f === '-') {
        handles.push(null)
        continue
      }
      try {
        handles.push(await open(f, 'r'))
      } catch (err) {
        throw new UnreadableFile(`cannot read ${f}: ${(err as Error).message}`)
      }
    }
    for (const [i, h] of handles.entries()) {
      try {
        await readInto(builder, h ? h.createReadStream({ highWaterMark: 1 << 20, autoClose: false }) : stdin())
      } catch (err) {
        throw new UnreadableFile(`cannot read ${sources[i]}: ${(err as Error).message}`)
      }
    }
  } finally {
    await Promise.all(handles.map((h) => h?.close().catch(() => undefined)))
  }
  return builder.result()
}

/** Log fields are client-controlled (a claimed keyid, an ip from a header): escape what a terminal would obey. */
function shown(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

function table(rows: string[][], indent = ''): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  const right = (c: number) => /^(REQUESTS|WOULD REFUSE|REFUSED|COUNT)$/.test(rows[0]![c]!)
  return rows.map((row) => indent + row.map((cell, c) => (right(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n') + '\n'
}

const sum = (o: Partial<Record<string, number>>) => Object.values(o).reduce<number>((s, n) => s + (n ?? 0), 0)

function clientName(c: ReportClient): string {
  const who = c.identity !== undefined ? c.identity : `ip ${c.ip}`
  return shown(c.claimed !== undefined ? `${who} (claimed ${c.claimed})` : who)
}

function clientRows(clients: ReportClient[], unlisted: Partial<Record<string, number>>, counts: Partial<Record<string, number>>): string[][] {
  const rows = [['REASON', 'COUNT', 'CLIENT', 'FP', 'LAST']]
  for (const reason of Object.keys(counts)) {
    for (const c of clients.filter((c) => c.reason === reason)) rows.push([reason, String(c.count), clientName(c), shown(c.fp ?? '-'), c.last ?? '-'])
    const rest = unlisted[reason]
    if (rest) rows.push([reason, String(rest), '(other clients)', '', ''])
  }
  return rows
}

function routeDetail(r: RouteReport): string {
  let out = ''
  const would = sum(r.wouldRefuse)
  const refused = sum(r.refused)
  if (would > 0) {
    out += `\n${shown(r.route)}: not ready, ${would} of ${r.requests} requests would be refused\n`
    out += table(clientRows(r.clients, r.unlistedClients, r.wouldRefuse), '  ')
  }
  if (refused > 0) {
    out += `\n${shown(r.route)}: ${refused} of ${r.requests} requests refused\n`
    out += table(clientRows(r.refusedClients, r.unlistedRefusedClients, r.refused), '  ')
  }
  if (out && r.countsApproximate) out += `  (more distinct clients than tracked: counts of listed clients are lower bounds)\n`
  return out
}

export function formatText(rep: Report): string {
  const notReady = rep.routes.filter((r) => r.verdict === 'not ready').length
  const period = rep.period.from ? ` from ${rep.period.from} to ${rep.period.to}` : ''
  let out = `${rep.lines.audit} audit lines${period}; ${rep.lines.skipped} other lines skipped\n`
  out += `${rep.routes.length} routes: ${rep.routes.length - notReady} ready, ${notReady} not ready\n`
  if (rep.routes.length > 0) {
    out += '\n'
    const rows = [['ROUTE', 'ENFORCE', 'REQUESTS', 'WOULD REFUSE', 'REFUSED', 'VERDICT']]
    for (const r of rep.routes) rows.push([shown(r.route), r.enforce, String(r.requests), String(sum(r.wouldRefuse)), String(sum(r.refused)), r.verdict])
    out += table(rows)
  }
  for (const r of rep.routes) out += routeDetail(r)
  if (rep.unmatched.requests > 0) {
    const reasons = Object.entries(rep.unmatched.refused).map(([code, n]) => `${code} ${n}`)
    out += `\nno route: ${rep.unmatched.requests} requests${reasons.length ? ` (${reasons.join(', ')})` : ''}\n`
  }
  return out
}

export async function run(argv: string[], stdin: () => Readable = () => process.stdin): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true)
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (positionals.filter((p) => p === '-').length > 1) throw new UsageError('stdin ("-") can be read only once')
  let rep: Report
  try {
    rep = await buildReport(positionals, stdin)
  } catch (err) {
    if (!(err instanceof UnreadableFile)) throw err
    process.stderr.write(`portcullis report: ${err.message}\n`)
    return 1
  }
  process.stdout.write(values.json ? JSON.stringify(rep) + '\n' : formatText(rep))
  return 0
}
