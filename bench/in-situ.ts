// Where a request's time goes inside the running gateway: `node dist/bench/in-situ.js [bearer|rfc9421-post]
// [SECONDS]`. A CPU profile samples and, under load, puts a socket write's kernel time and a preempted
// thread's wait on whatever frame was running; a microbenchmark runs one function warm, which the gateway
// never does. This times the steps themselves: a copy of dist/src (in dist/.in-situ, so packages still
// resolve) has each function of STEPS wrapped to add its wall time per call, the gateway runs from that
// copy in front of the bench backend under autocannon (bench/load.js) for a 10 s warm-up and then
// SECONDS, and the table shows µs per call and calls per request. Times are inclusive (a step's callees
// are in it) and an async function's is its synchronous part only; each wrapper adds ~0.1 µs. A step
// that is no longer in the source stops the tool: the list follows the code.
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { LoadSpec } from './load.js'
import { startListening } from './listening.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const DIST = join(HERE, '..')
const COPY = join(DIST, '.in-situ')
const scenario = process.argv[2] ?? 'bearer'
const SECONDS = Number(process.argv[3] ?? 10)

/** Module (under src/) → the functions timed in it, top-level or nested, as the compiled JS names them. */
const STEPS: Record<string, string[]> = {
  'pipeline.js': ['handleRequest', 'decide', 'authorize', 'answer'],
  'steps/route.js': ['checkPath'],
  'policy/routes.js': ['matchRoute'],
  'auth/authenticate.js': ['authenticate'],
  'auth/bearer.js': ['bearerToken', 'isB64Token'],
  'auth/credential.js': ['digestKey', 'keyedFingerprint'],
  'steps/authenticate.js': ['checkCredentials'],
  'steps/admit.js': ['admitLocally', 'admit'],
  'auth/rfc9421.js': ['authenticate', 'checkParams', 'requestMessage'],
  'auth/signature-base.js': ['parseSignatureFields', 'buildSignatureBase'],
  'auth/hmac.js': ['hmacSha256With'],
  'auth/content-digest.js': ['verifyContentDigest'],
  'proxy/body.js': ['readBody'],
  'steps/limits.js': ['checkReplayAndLimit'],
  'state/memory.js': ['digest'],
  'steps/forward.js': ['headersFor', 'forwardRequest'],
  'proxy/headers.js': ['forwardHeaders', 'upstreamHeaders'],
}
/** Methods of classes, wrapped on their prototype: [module, class, method]. */
const METHODS: [string, string, string][] = [
  ['proxy/forward.js', 'UpstreamPools', 'send'],
  ['proxy/forward.js', 'Relay', 'onHeaders'],
  ['proxy/forward.js', 'Relay', 'onData'],
  ['proxy/forward.js', 'Relay', 'onComplete'],
]

/** Added to each changed module: one table per process, printed on stderr at exit; SIGUSR2 empties it. */
const TIMER = `const __now = process.hrtime.bigint;
const __time = (globalThis.__portcullisTime ??= (() => {
  const table = new Map();
  process.on('SIGUSR2', () => table.clear());
  process.once('exit', () => { for (const [k, [t, n]] of table) process.stderr.write('IN-SITU ' + JSON.stringify({ step: k, us: Number(t) / 1000, calls: n }) + '\\n'); });
  return (k, t0) => { const d = __now() - t0; const e = table.get(k); if (e) { e[0] += d; e[1]++; } else table.set(k, [d, 1]); };
})());
`

function instrument(): void {
  rmSync(COPY, { recursive: true, force: true })
  mkdirSync(COPY, { recursive: true })
  cpSync(join(DIST, 'src'), join(COPY, 'src'), { recursive: true })
  const byModule = new Map<string, string[]>()
  for (const [m, names] of Object.entries(STEPS)) byModule.set(m, names.map((n) => `fn:${n}`))
  for (const [m, cls, method] of METHODS) byModule.set(m, [...(byModule.get(m) ?? []), `method:${cls}.${method}`])
  for (const [module, items] of byModule) {
    const file = join(COPY, 'src', module)
    let text = readFileSync(file, 'utf8')
    let tail = ''
    for (const item of items) {
      const [kind, name] = item.split(':') as [string, string]
      const label = `${module.replace(/\.js$/, '')} ${name}`
      if (kind === 'method') {
        const [cls, method] = name.split('.') as [string, string]
        if (!new RegExp(`\\n\\s+(async )?${method}\\(`).test(text)) throw new Error(`${module}: no method ${name}`)
        tail += `{ const o = ${cls}.prototype.${method}; ${cls}.prototype.${method} = function (...a) { const t = __now(); try { return o.apply(this, a); } finally { __time(${JSON.stringify(label)}, t); } }; }\n`
        continue
      }
      const at = new RegExp(`(^|\\n)([ \\t]*)(export )?(async )?function ${name}\\(`).exec(text)
      if (!at) throw new Error(`${module}: no function ${name}`)
      const [, lead, indent, exported = '', async = ''] = at
      const shown = async ? `${label} (sync part)` : label
      const wrapper = `${lead}${indent}${exported}function ${name}(...a) { const t = __now(); try { return ${name}__timed.apply(this, a); } finally { __time(${JSON.stringify(shown)}, t); } }\n${indent}${async}function ${name}__timed(`
      text = text.slice(0, at.index) + wrapper + text.slice(at.index + at[0].length)
    }
    // after the imports, which must come first
    const lines = text.split('\n')
    let last = -1
    lines.forEach((l, i) => {
      if (l.startsWith('import ') || l.startsWith('} from ')) last = i
    })
    lines.splice(last + 1, 0, TIMER)
    writeFileSync(file, lines.join('\n') + '\n' + tail)
  }
}

const children: ChildProcess[] = []
function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  return startListening(children, process.execPath, args, env, 15_000)
}

function load(spec: LoadSpec): Promise<{ total: number; non2xx: number }> {
  const file = join(COPY, 'load.json')
  writeFileSync(file, JSON.stringify(spec))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(HERE, 'load.js'), file], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`load exited ${code}`))))
  })
}

async function main(): Promise<void> {
  instrument()
  const token = `in-situ-${Date.now()}-${'t'.repeat(24)}`
  const signKey = `in-situ-key-${'k'.repeat(32)}`
  const backend = await start([join(HERE, 'backend.js')])
  const config = join(COPY, 'gateway.yaml')
  writeFileSync(
    config,
    `version: 1
server: { listen: 127.0.0.1:0, bodyLimit: 1mb }
admin: { listen: 127.0.0.1:0 }
state: { store: memory }
upstreams:
  backend: { url: ${backend.url}, timeout: 10s }
identities:
  - { name: operator, roles: [ops], bearer: "\${env:IN_SITU_TOKEN}" }
schemes:
  signed: { type: rfc9421, window: 60s, keys: { bench-1: "\${env:IN_SITU_SIGN_KEY}" }, roles: [ops] }
routes:
  - { path: /bearer, upstream: backend, auth: [bearer], roles: [ops] }
  - { path: /signed, upstream: backend, auth: [signed], roles: [ops] }
defaults:
  rateLimit: { max: 100000000, window: 1m, by: identity }
  authFailures: { max: 20, window: 1m }
`,
  )
  const gw = await start([join(COPY, 'src', 'cli', 'main.js'), 'serve', '--config', config], { IN_SITU_TOKEN: token, IN_SITU_SIGN_KEY: signKey })
  const body = JSON.stringify({ model: 'bench', payload: 'x'.repeat(1000) })
  const specs: Record<string, Omit<LoadSpec, 'seconds'>> = {
    bearer: { url: gw.url, path: '/bearer', connections: 50, headers: { authorization: `Bearer ${token}` } },
    'rfc9421-post': { url: gw.url, path: '/signed', method: 'POST', body, headers: { 'content-type': 'application/json' }, connections: 50, sign: { kind: 'rfc9421', keyId: 'bench-1', secret: signKey } },
  }
  const spec = specs[scenario]
  if (!spec) throw new Error(`scenario: one of ${Object.keys(specs).join(', ')}`)
  await load({ ...spec, seconds: 10 })
  gw.child.kill('SIGUSR2')
  await new Promise((r) => setTimeout(r, 200))
  const r = await load({ ...spec, seconds: SECONDS })
  const exited = new Promise((resolve) => gw.child.once('exit', resolve))
  gw.child.kill('SIGTERM')
  await exited
  const rows = gw
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('IN-SITU '))
    .map((l) => JSON.parse(l.slice(8)) as { step: string; us: number; calls: number })
    .sort((a, b) => b.us / b.calls - a.us / a.calls)
  process.stdout.write(`${scenario}: ${r.total} requests in ${SECONDS} s (${r.non2xx} not 2xx); µs per call, inclusive, wall time\n`)
  for (const row of rows) process.stdout.write(`${(row.us / row.calls).toFixed(2).padStart(8)} µs  ×${(row.calls / r.total).toFixed(2)} per request  ${row.step}\n`)
}

main()
  .catch((err) => {
    process.stderr.write(`in-situ: ${(err as Error).message}\n`)
    process.exitCode = 1
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    rmSync(COPY, { recursive: true, force: true })
  })
