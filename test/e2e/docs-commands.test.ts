// Every documented command works as written (issue 17): the fenced ```sh blocks of README.md and docs/*.md
// that call portcullis, curl or examples/ run, in order and one shell per file as a reader would type them,
// against a gateway started from the shipped gateway.yaml with secrets made by the README's own step.
// Only the listening ports are changed (to free ones) and /etc/portcullis points into a temp dir.
// A block marked ```sh norun needs a config other than the shipped one (TLS, jwt, join, assertion).
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLI, startBackend, startGateway } from './harness.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

interface Block {
  file: string
  line: number
  info: string
  body: string
}

/** Fenced blocks, also indented ones inside list items (the fence's indent is removed from each line). */
export function fencedBlocks(file: string): Block[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const out: Block[] = []
  const re = /^( *)```([^\n]*)\n([\s\S]*?)^\1```/gm
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const indent = m[1]!.length
    const body = m[3]!.split('\n').map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n')
    out.push({ file, line: text.slice(0, m.index).split('\n').length, info: m[2]!.trim(), body })
  }
  return out
}

const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]
const CALLS = /(^|[\s$(])(portcullis|npx portcullis|curl|python3 examples\/|sh examples\/)\b/m
const blocks = DOCS.flatMap(fencedBlocks).filter((b) => /^(sh|bash|shell)\b/.test(b.info) && CALLS.test(b.body))
const runnable = blocks.filter((b) => !/\bnorun\b/.test(b.info))
const isSecretsStep = (b: Block) => b.file === 'README.md' && /export [A-Z_]+=\$\(npx portcullis keygen\)/.test(b.body)

function sh(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-e', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

t.test('every documented shell command works against the shipped gateway.yaml', async (t) => {
  t.setTimeout(240_000)
  t.ok(runnable.length >= 8, `found the documented blocks (${runnable.length} to run, ${blocks.length - runnable.length} norun)`)
  const secretsStep = runnable.find(isSecretsStep)
  t.ok(secretsStep, "the README's step that makes the secrets")

  // The reader's shell: `portcullis` and `npx portcullis` are this build; curl fails on a non-2xx answer
  // (a documented request the gateway refuses is a broken doc); examples/ is the repo's.
  const work = mkdtempSync(join(tmpdir(), 'pc-docs-'))
  const bin = join(work, 'bin')
  const etc = join(work, 'etc', 'portcullis')
  mkdirSync(bin)
  mkdirSync(join(etc, 'secrets'), { recursive: true })
  symlinkSync(join(ROOT, 'examples'), join(work, 'examples'))
  const shim = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`)
    chmodSync(join(bin, name), 0o755)
  }
  shim('portcullis', `exec "${process.execPath}" "${CLI}" "$@"`)
  shim('npx', 'exec "$@"')
  shim('curl', 'for c in /usr/bin/curl /usr/local/bin/curl /bin/curl; do [ -x "$c" ] && exec "$c" -sS --fail-with-body "$@"; done; echo "no curl" >&2; exit 127')
  const base: NodeJS.ProcessEnv = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: work, LANG: 'C' }

  const made = await sh(`${secretsStep!.body}\nenv`, work, base)
  t.equal(made.code, 0, `README.md:${secretsStep!.line}: ${made.out}`)
  const secrets = Object.fromEntries(
    made.out
      .split('\n')
      .map((l) => /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => !!m && /TOKEN|KEY|SECRET/.test(m[1]!))
      .map((m) => [m[1]!, m[2]!]),
  )
  t.same(Object.keys(secrets).sort(), ['COORDINATOR_API_KEY', 'DISTRIBUTED_WORKER_SECRET', 'LLORCH_API_TOKEN', 'LLORCH_API_TOKEN_NEXT', 'WORKER_MASTER_KEY'], 'every secret the shipped config names')
  writeFileSync(join(etc, 'secrets', 'llorch-token'), secrets.LLORCH_API_TOKEN + '\n')

  const orchestrator = await startBackend()
  const poolManager = await startBackend()
  const shipped = readFileSync(join(ROOT, 'gateway.yaml'), 'utf8')
  const yaml = shipped
    .replace('listen: 127.0.0.1:8080', 'listen: 127.0.0.1:0')
    .replace('listen: 127.0.0.1:9901', 'listen: 127.0.0.1:0')
    .replace('http://127.0.0.1:9000', orchestrator.url)
    .replace('http://127.0.0.1:9200', poolManager.url)
  t.equal(yaml.split('\n').length, shipped.split('\n').length, 'only ports changed')
  const gw = await startGateway(yaml, secrets)
  t.teardown(async () => {
    await gw.stop()
    await orchestrator.close()
    await poolManager.close()
  })
  const hostPort = new URL(gw.url).host
  const adminHostPort = new URL(gw.adminUrl!).host

  for (const file of DOCS) {
    const mine = runnable.filter((b) => b.file === file && b !== secretsStep)
    if (mine.length === 0) continue
    const script = mine
      .map((b) => {
        const body = b.body
          .replace(/\b([A-Z][A-Z0-9_]*)=\.\.\.(?=\s)/g, '$1="$$$1"') // `VAR=...` placeholders: the reader's own value
          .replaceAll('127.0.0.1:8080', hostPort)
          .replaceAll('127.0.0.1:9901', adminHostPort)
          .replaceAll('/etc/portcullis/', `${etc}/`)
        return `echo "### ${b.file}:${b.line}" >&2\n${body}`
      })
      .join('\n')
    const before = orchestrator.requests.length + poolManager.requests.length
    const r = await sh(script, work, { ...base, ...secrets })
    t.equal(r.code, 0, `${file}: every block runs and exits 0\n${r.out}`)
    const reached = orchestrator.requests.length + poolManager.requests.length - before
    const sends = mine.reduce((n, b) => n + (b.body.match(/\bcurl\b|--send\b|examples\/sign_/g) ?? []).length, 0)
    if (sends) t.ok(reached > 0, `${file}: the documented requests reached the backends (${reached})`)
  }
  for (const s of Object.values(secrets)) t.notOk(gw.output().includes(s), 'no secret in the gateway output')
})
