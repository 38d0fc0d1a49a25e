// Instructions per request, counted by callgrind: `node dist/bench/instructions.js [ceiling|public|bearer|all]
// [N]` (default all, 3000). Wall and CPU time on a shared host move by more than the changes worth
// measuring; an instruction count hardly depends on what else the host runs. Each target runs under
// valgrind with instrumentation off, in front of a fresh bench backend: the node:http + undici ceiling
// (node-proxy.js) and the gateway on a public and on a bearer route (memory store, rate limit by identity,
// auth-failure limit, admin listener so metrics count, audit log to a drained pipe). 20000 requests warm
// it, then N are counted. One connection: at ten, how many requests one event-loop turn takes varies, and
// the count with it (±4k). THE figure is the main thread's instructions per request less V8's optimizing
// compiler and GC, which run when they will rather than per request; the table also shows those and all
// threads. Fresh processes can differ: before this stop took the spread-then-properties object literals off
// the request path, nine bearer runs of one build gave 295.7k–310k and once 343k (V8's slow path for the
// properties after a spread, which a process may or may not fall into, and GC work the name patterns
// miss); after it, three runs agreed within 0.13 %. Run more than once, on an otherwise idle machine, and
// compare the lowest. Writes bench/instructions.json. Needs valgrind; loopback only; every wait bounded.
import { execFile, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import autocannon from 'autocannon'
import { startListening } from './listening.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const DIST = join(HERE, '..')
const TARGETS = ['ceiling', 'public', 'bearer'] as const
type Target = (typeof TARGETS)[number]
const which = process.argv[2] ?? 'all'
const N = Number(process.argv[3] ?? 3000)
const WARMUP = 20_000
const TOKEN = randomBytes(32).toString('hex')
const execFileP = promisify(execFile)

const children: ChildProcess[] = []
const dir = mkdtempSync(join(tmpdir(), 'portcullis-instructions-'))
const killAll = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'))
// on every way out, Ctrl-C included: a target left under valgrind would run on at full CPU
process.once('exit', () => (killAll(), rmSync(dir, { recursive: true, force: true })))
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130))

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string }> {
  // valgrind takes ~30 s to bring node up
  return startListening(children, cmd, args, env, 120_000)
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  // SIGKILL: valgrind's exit dump, after a SIGTERM, would take a while and is not read
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
}

/** `amount` requests on one connection, every one 2xx or the run fails. */
function fire(url: string, headers: Record<string, string>, amount: number): Promise<number> {
  return new Promise((resolve, reject) => {
    // under valgrind a request takes ~3 ms; the bound leaves over ten times that
    const bound = 60_000 + amount * 50
    const instance = autocannon({ url, headers, connections: 1, amount, timeout: 60 }, (err, r) => {
      clearTimeout(timer)
      if (err) return reject(err)
      if (r['2xx'] !== amount || r.non2xx > 0 || r.errors > 0) return reject(new Error(`${url}: ${r['2xx']} of ${amount} 2xx, ${r.non2xx} non-2xx, ${r.errors} errors (${JSON.stringify(r.statusCodeStats)})`))
      resolve(r['2xx'])
    })
    const timer = setTimeout(() => (instance.stop(), reject(new Error(`${url}: ${amount} requests not done in ${bound / 1000} s`))), bound)
  })
}

async function callgrind(pid: number, ...args: string[]): Promise<void> {
  // callgrind_control exits 0 even when it found no such run; its "OK" is the only sign the command landed
  const { stdout } = await execFileP('callgrind_control', [...args, String(pid)], { timeout: 60_000 })
  if (!stdout.includes('OK')) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: ${stdout.trim()}`)
}

const COMPILER = /compiler::|Turbofan|Maglev|OptimizedCompilationJob/
const GC = /Scavenge|Marking|Sweep|Heap::|Evacuat/
interface Dump { thread: number; all: number; compiler: number; gc: number }

/**
 * One thread's dump, its self costs summed by function. Names are compressed — `(id) name` defines an id,
 * `(id)` reuses it — and fn= and cfn= share one table, so a function first named as a callee is known by
 * its id later. The line after `calls=` is the callee's inclusive cost, already in the callee's own self
 * cost: adding it would count it twice.
 */
function readDump(text: string): Dump {
  const d: Dump = { thread: 0, all: 0, compiler: 0, gc: 0 }
  const names = new Map<string, string>()
  let positions = 1
  let totals: number | undefined
  let bucket: 'compiler' | 'gc' | undefined
  let afterCall = false
  for (const line of text.split('\n')) {
    if (/^[0-9+\-*]/.test(line)) {
      if (afterCall) {
        afterCall = false
        continue
      }
      const cost = Number(line.split(' ')[positions] ?? 0)
      d.all += cost
      if (bucket) d[bucket] += cost
    } else if (line.startsWith('fn=') || line.startsWith('cfn=')) {
      const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line)
      if (m?.[2] !== undefined) names.set(m[1]!, m[2])
      const name = m ? names.get(m[1]!) : line.slice(line.indexOf('=') + 1)
      if (name === undefined) throw new Error(`callgrind dump: ${line} names nothing`)
      if (line[0] === 'f') bucket = COMPILER.test(name) ? 'compiler' : GC.test(name) ? 'gc' : undefined
    } else if (line.startsWith('calls=')) afterCall = true
    else if (line.startsWith('thread:')) d.thread = Number(line.slice(7))
    else if (line.startsWith('positions:')) positions = line.slice(10).trim().split(/\s+/).length
    else if (line.startsWith('totals:')) totals = Number(line.slice(7).trim().split(/\s+/)[0])
  }
  // callgrind's own total: if the sum differs, this parser has misread the format
  if (totals !== undefined && totals !== d.all) throw new Error(`callgrind dump: self costs sum to ${d.all}, totals say ${totals}`)
  return d
}

function config(backend: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 1mb }
admin: { listen: 127.0.0.1:0 }
state: { store: memory }
upstreams:
  backend: { url: ${backend}, timeout: 10s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:BENCH_TOKEN}" }
routes:
  - { path: /public, upstream: backend, public: true }
  - { path: /bearer, upstream: backend, auth: [bearer], roles: [ops] }
defaults:
  rateLimit: { max: 100000000, window: 1m, by: identity }
  authFailures: { max: 20, window: 1m }
`
}

interface Result { target: Target; requests: number; main: number; compiler: number; gc: number; mainMinus: number; allThreads: number }

async function measure(target: Target): Promise<Result> {
  const backend = await start(process.execPath, [join(HERE, 'backend.js')])
  const out = join(dir, `${target}.out`)
  const valgrind = ['--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, process.execPath]
  let args: string[]
  if (target === 'ceiling') args = [...valgrind, join(HERE, 'node-proxy.js'), backend.url]
  else {
    const file = join(dir, 'gateway.yaml')
    writeFileSync(file, config(backend.url))
    args = [...valgrind, join(DIST, 'src', 'cli', 'main.js'), 'serve', '--config', file]
  }
  const t = await start('valgrind', args, { BENCH_TOKEN: TOKEN })
  // the ceiling gets the bearer request, header and all, so ceiling ÷ bearer compares the same bytes in
  const headers: Record<string, string> = target === 'public' ? {} : { authorization: `Bearer ${TOKEN}` }
  const url = `${t.url}/${target === 'public' ? 'public' : 'bearer'}`
  process.stderr.write(`${target}: warming up (${WARMUP} requests)\n`)
  await fire(url, headers, WARMUP)
  await callgrind(t.child.pid!, '-i', 'on')
  process.stderr.write(`${target}: counting ${N} requests\n`)
  const requests = await fire(url, headers, N)
  await callgrind(t.child.pid!, '-d')
  await Promise.all([stop(t.child), stop(backend.child)])
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith(`${target}.out.`))
    .map((f) => readDump(readFileSync(join(dir, f), 'utf8')))
  const main = dumps.find((d) => d.thread === 1)
  if (!main) throw new Error(`${target}: no dump of the main thread in ${dir}`)
  const per = (n: number) => Math.round(n / requests)
  return {
    target,
    requests,
    main: per(main.all),
    compiler: per(main.compiler),
    gc: per(main.gc),
    mainMinus: per(main.all - main.compiler - main.gc),
    allThreads: per(dumps.reduce((s, d) => s + d.all, 0)),
  }
}

async function main(): Promise<void> {
  const chosen = which === 'all' ? [...TARGETS] : TARGETS.filter((t) => t === which)
  if (chosen.length === 0) throw new Error(`target: one of ${TARGETS.join(', ')}, all`)
  if (!Number.isInteger(N) || N < 1) throw new Error(`N: a positive whole number of requests, not ${process.argv[3]}`)
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--version'], { timeout: 10_000 }).error) throw new Error(`${tool} not found: install valgrind`)
  }
  const results: Result[] = []
  for (const target of chosen) results.push(await measure(target))
  const n = (v: number) => v.toLocaleString('en-US')
  const rows = [['target', 'requests', 'main/req', 'compiler', 'GC', 'main - compiler - GC', 'all threads/req']]
  for (const r of results) rows.push([r.target, String(r.requests), n(r.main), n(r.compiler), n(r.gc), n(r.mainMinus), n(r.allThreads)])
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  for (const row of rows) process.stdout.write(row.map((cell, c) => (c ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ') + '\n')
  const ceiling = results.find((r) => r.target === 'ceiling')
  const ratios: Record<string, number> = {}
  for (const r of results) {
    if (!ceiling || r === ceiling) continue
    ratios[`ceiling ÷ ${r.target}`] = Math.round((ceiling.mainMinus / r.mainMinus) * 1000) / 1000
    process.stdout.write(`ceiling ÷ ${r.target} (main - compiler - GC): ${ratios[`ceiling ÷ ${r.target}`]}\n`)
  }
  const outFile = join(DIST, '..', 'bench', 'instructions.json')
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), node: process.version, warmup: WARMUP, requests: N, connections: 1, unit: 'instructions per request (callgrind Ir)', results, ratios }, null, 2) + '\n')
  process.stdout.write(`written ${outFile}\n`)
}

main()
  .catch((err) => {
    process.stderr.write(`instructions: ${(err as Error).message}\n`)
    process.exitCode = 1
  })
  .finally(killAll)
