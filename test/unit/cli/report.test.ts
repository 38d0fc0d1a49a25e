// `portcullis report` as a command: files and stdin, several files merged, --json, --help, exit codes,
// the bounded line reader, and a log's control characters never reaching the terminal.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatText, lineSplitter } from '../../../src/cli/report.js'
import { ReportBuilder } from '../../../src/observe/report.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'cli', 'main.js')

function cli(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'report', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    // Generous: a CLI start on a loaded 2-core machine can take seconds.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
  })
}

function audit(over: Record<string, unknown>): string {
  return JSON.stringify({
    level: 30,
    time: Date.UTC(2026, 11, 1, 8),
    event: 'allow',
    reqId: 'r',
    method: 'POST',
    path: '/nodes/register',
    route: '/nodes/',
    identity: null,
    authMethod: null,
    fp: null,
    reason: null,
    ip: '10.0.0.2',
    status: 200,
    upstream: 'orchestrator',
    ms: 1,
    msg: 'auth',
    ...over,
  })
}

const dir = mkdtempSync(join(tmpdir(), 'portcullis-report-'))
const replicaA = join(dir, 'gw-a.log')
const replicaB = join(dir, 'gw-b.log')
writeFileSync(
  replicaA,
  [
    '> orchestrator-gw@2.1.0 start',
    '> portcullis serve',
    '{"level":30,"time":1,"msg":"listening","port":8080}',
    audit({ event: 'report', reason: 'MISSING_CREDENTIALS', ip: '10.0.0.31', status: 201 }),
    audit({ event: 'allow', identity: 'pool-manager', authMethod: 'bearer', fp: 'token:aa11bb' }),
    audit({ route: '/tasks/', event: 'allow', identity: 'scheduler', authMethod: 'bearer', fp: 'token:cc22dd' }),
    '',
  ].join('\n'),
)
writeFileSync(
  replicaB,
  [
    audit({ event: 'report', reason: 'MISSING_CREDENTIALS', ip: '10.0.0.31', status: 201 }),
    audit({ event: 'report', reason: 'INVALID_SIGNATURE', ip: '10.0.0.40', claimed: 'node-7', authMethod: 'worker-v1', fp: 'key:0a0b0c' }),
    'Error: something else entirely',
    '{"broken": ',
    audit({ route: null, path: '/.env', event: 'deny', reason: 'NO_ROUTE', status: 404 }),
  ].join('\r\n'),
)

t.test('several files are merged into one report, in text', async (t) => {
  const r = await cli([replicaA, replicaB])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^6 audit lines from 2026-12-01T08:00:00.000Z to 2026-12-01T08:00:00.000Z; 5 other lines skipped$/m)
  t.match(r.stdout, /^2 routes: 1 ready, 1 not ready$/m)
  t.match(r.stdout, /^\/nodes\/\s+report\s+4\s+3\s+0\s+not ready$/m)
  t.match(r.stdout, /^\/tasks\/\s+unknown\s+1\s+0\s+0\s+ready$/m)
  t.match(r.stdout, /^\s+MISSING_CREDENTIALS\s+2\s+ip 10\.0\.0\.31\s+-\s/m, 'one client across both replicas, counted twice')
  t.match(r.stdout, /^\s+INVALID_SIGNATURE\s+1\s+ip 10\.0\.0\.40 \(claimed node-7\)\s+key:0a0b0c\s/m)
  t.match(r.stdout, /^no route: 1 requests \(NO_ROUTE 1\)$/m)
})

t.test('--json: one document; the same report from stdin as from the files', async (t) => {
  const { readFileSync } = await import('node:fs')
  const [files, stdin, dash] = await Promise.all([
    cli(['--json', replicaA, replicaB]),
    cli(['--json'], readFileSync(replicaA, 'utf8') + readFileSync(replicaB, 'utf8')),
    cli([replicaA, '-', '--json'], readFileSync(replicaB, 'utf8')),
  ])
  for (const r of [files, stdin, dash]) t.equal(r.code, 0, r.stderr)
  const doc = JSON.parse(files.stdout)
  t.same(
    doc.routes.map((r: { route: string; verdict: string; wouldRefuse: object }) => [r.route, r.verdict, r.wouldRefuse]),
    [
      ['/nodes/', 'not ready', { MISSING_CREDENTIALS: 2, INVALID_SIGNATURE: 1 }],
      ['/tasks/', 'ready', {}],
    ],
  )
  t.same(doc.unmatched, { requests: 1, refused: { NO_ROUTE: 1 } })
  t.same(doc.lines, { audit: 6, skipped: 5 })
  t.same(JSON.parse(stdin.stdout), doc, 'stdin without FILE gives the same document')
  t.same(JSON.parse(dash.stdout), doc, '"-" reads stdin among the files')
  t.equal(files.stdout.trim().split('\n').length, 1, 'one line, one document')
})

t.test('exit codes: 0 whatever the verdicts, 1 naming an unreadable file, 2 on usage errors; --help', async (t) => {
  const missing = join(dir, 'no-such.log')
  const [empty, unreadable, isDir, badFlag, twoStdin, help] = await Promise.all([
    cli([], ''),
    cli([replicaA, missing]),
    cli([dir]),
    cli(['--csv', replicaA]),
    cli(['-', '-']),
    cli(['--help']),
  ])
  t.equal(empty.code, 0, 'an empty log is a report (of nothing)')
  t.match(empty.stdout, /^0 audit lines; 0 other lines skipped\n0 routes: 0 ready, 0 not ready\n$/)
  t.equal(unreadable.code, 1)
  t.equal(unreadable.stdout, '', 'no partial report')
  t.match(unreadable.stderr, `cannot read ${missing}`)
  t.equal(isDir.code, 1)
  t.match(isDir.stderr, `cannot read ${dir}`)
  t.equal(badFlag.code, 2)
  t.match(badFlag.stderr, /--csv/)
  t.equal(twoStdin.code, 2)
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: portcullis report \[FILE\.\.\.\] \[--json\]/)
  t.match(help.stdout, /not ready/)
})

t.test('the line reader: any chunking gives the same lines; an over-long line is dropped, not held', async (t) => {
  const text = 'one\r\ntwo\n\nthree é€\nfour'
  for (let size = 1; size <= text.length + 1; size++) {
    const bytes = Buffer.from(text)
    const got: string[] = []
    const split = lineSplitter((l) => got.push(l), () => got.push('<too long>'))
    for (let at = 0; at < bytes.length; at += size) split.push(bytes.subarray(at, at + size))
    split.end()
    t.same(got, ['one', 'two', '', 'three é€', 'four'], `chunks of ${size} bytes`)
  }
  const got: string[] = []
  const split = lineSplitter((l) => got.push(l), () => got.push('<too long>'), 16)
  split.push(Buffer.from('short\n' + 'x'.repeat(10)))
  split.push(Buffer.from('y'.repeat(10)))
  split.push(Buffer.from('z'.repeat(1000) + '\nafter\n' + 'w'.repeat(40)))
  split.end()
  t.same(got, ['short', '<too long>', 'after', '<too long>'])
})

t.test('an over-long line in a log is skipped and counted, the rest still read', async (t) => {
  const file = join(dir, 'long.log')
  writeFileSync(file, audit({}) + '\n' + 'x'.repeat(200 * 1024) + '\n' + audit({ route: '/tasks/' }) + '\n')
  const r = await cli(['--json', file])
  t.equal(r.code, 0)
  const doc = JSON.parse(r.stdout)
  t.same(doc.lines, { audit: 2, skipped: 1 })
})

t.test('control characters from the log (a claimed name, an ip) are escaped in the text output', async (t) => {
  const b = new ReportBuilder()
  b.addLine(audit({ event: 'report', reason: 'INVALID_SIGNATURE', claimed: 'node\u001b[2J\u001b]0;pwned\u0007', ip: '10.0.0.9\r' }))
  const out = formatText(b.result())
  t.notOk(/[\u0000-\u0008\u000b-\u001f\u007f]/.test(out), 'no raw control character but newlines')
  t.match(out, 'node\\u001b[2J\\u001b]0;pwned\\u0007')
  t.match(out, 'ip 10.0.0.9\\u000d')
})
