// `portcullis sign` and `portcullis derive-key` (DESIGN §1), run as child processes like a user would.
import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRfc9421Authenticator } from '../../../src/auth/rfc9421.js'
import { createWorkerV1Authenticator } from '../../../src/auth/worker-v1.js'
import { run as deriveRun } from '../../../src/cli/derive-key.js'
import { run as signRun } from '../../../src/cli/sign.js'
import type { AuthOutcome, AuthRequest } from '../../../src/auth/types.js'

const KEY = 'k-0123456789abcdef0123456789abcdef'
const MASTER = 'master-0123456789abcdef0123456789abcdef'
const dist = (name: string) => fileURLToPath(new URL(`../../../src/cli/${name}.js`, import.meta.url))

function cli(name: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `import(${JSON.stringify(dist(name))}).then(m => m.run(process.argv.slice(1))).then(c => process.exit(c))`
  return new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { env: { PATH: process.env.PATH ?? '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

function headerLines(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]))
}

function arrive(method: string, url: string, headers: Record<string, string>, body?: Buffer): AuthRequest {
  const u = new URL(url)
  const all = { host: u.host, ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }
  const raw = { headers: all, rawHeaders: Object.entries(all).flat() } as unknown as IncomingMessage
  return { raw, method, path: u.pathname, query: u.search, target: u.pathname + u.search, body, tls: false, now: Date.now() }
}

const rfc = createRfc9421Authenticator({ name: 'signed', windowMs: 60_000, roles: [], keys: new Map([['w1', KEY]]) })
const w1 = createWorkerV1Authenticator({ name: 'workers', secret: KEY, windowMs: 300_000, roles: [] })

t.test('derive-key prints the derived key', async (t) => {
  const ok = await cli('derive-key', ['--master-env', 'M', '--key-id', 'worker-7'], { M: MASTER })
  t.same(ok, { code: 0, stdout: '38c6d5364c08dfda26c6649e75927f905c991d17a28587459d017dbb1a75cc82\n', stderr: '' })
  const unset = await cli('derive-key', ['--master-env', 'M', '--key-id', 'worker-7'])
  t.equal(unset.code, 1)
  t.match(unset.stderr, /M is not set/)
  const short = await cli('derive-key', ['--master-env', 'M', '--key-id', 'w'], { M: 'short' })
  t.equal(short.code, 1)
  t.notMatch(short.stderr, /short\b.*short/, 'the value is not echoed')
  await t.rejects(deriveRun(['--key-id', 'w']), { name: 'Error' })
  await t.rejects(deriveRun(['--master-env', 'M', '--key-id', 'has space']))
})

t.test('sign --scheme worker-v1 prints the three headers', async (t) => {
  const out = await cli('sign', ['--scheme', 'worker-v1', '--id', 'worker-1', '--secret-env', 'S', 'http://127.0.0.1:8080/v2/x'], { S: KEY })
  t.equal(out.code, 0)
  t.match(out.stdout, /^X-Worker-Id: worker-1\nX-Worker-Timestamp: \d{13}\nX-Worker-Signature: [0-9a-f]{64}\n$/)
  const verdict = (await w1.authenticate(arrive('GET', 'http://127.0.0.1:8080/v2/x', headerLines(out.stdout)))) as AuthOutcome
  t.equal(verdict.kind, 'identity')
})

t.test('sign --scheme rfc9421 with -d TEXT and -d @file', async (t) => {
  const url = 'http://127.0.0.1:8080/pools/1?x=1'
  const text = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', '-d', '{"a":1}', url], { S: KEY })
  t.equal(text.code, 0)
  t.match(text.stdout, /^Signature-Input: sig1=\("@method" "@authority" "@path" "@query" "content-digest"\);created=\d+;keyid="w1";nonce="[^"]+"\nSignature: sig1=:[^:]+:\nContent-Digest: sha-256=:[^:]+:\n$/)
  t.equal(((await rfc.authenticate(arrive('POST', url, headerLines(text.stdout), Buffer.from('{"a":1}')))) as AuthOutcome).kind, 'identity')
  const dir = mkdtempSync(join(tmpdir(), 'pc-sign-'))
  writeFileSync(join(dir, 'body'), 'line\n')
  const file = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', '-X', 'PUT', '-d', `@${join(dir, 'body')}`, url], { S: KEY })
  t.equal(((await rfc.authenticate(arrive('PUT', url, headerLines(file.stdout), Buffer.from('line\n')))) as AuthOutcome).kind, 'identity', 'file bytes exactly, newline kept')
  const get = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', '-H', 'X-Trace: 1', url], { S: KEY })
  t.equal(((await rfc.authenticate(arrive('GET', url, headerLines(get.stdout)))) as AuthOutcome).kind, 'identity', 'no -d: GET')
  const missing = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', '-d', '@/nonexistent/x', url], { S: KEY })
  t.equal(missing.code, 1)
})

t.test('sign rejects bad usage', async (t) => {
  await t.rejects(signRun(['--scheme', 'rfc9421', '--secret-env', 'S', 'http://h/']))
  await t.rejects(signRun(['--scheme', 'nope', '--secret-env', 'S', 'http://h/']))
  await t.rejects(signRun(['--scheme', 'worker-v1', '--id', 'a', '--secret-env', 'S', 'ftp://h/']))
  await t.rejects(signRun(['--scheme', 'worker-v1', '--id', 'a', '--secret-env', 'S', '-H', 'no colon', 'http://h/']))
  await t.rejects(signRun(['--scheme', 'worker-v1', '--id', 'a', '--secret-env', 'S']))
})

t.test('sign --send sends the request and exits 0 only on 2xx', async (t) => {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks)
    const target = req.url ?? '/'
    const at = target.indexOf('?')
    const a = rfc.present(req) ? rfc : w1
    const out = (await a.authenticate({ raw: req, method: req.method ?? 'GET', path: at < 0 ? target : target.slice(0, at), query: at < 0 ? '' : target.slice(at), target, body: a.needsBody?.(req) ? body : undefined, tls: false, now: Date.now() })) as AuthOutcome
    res.writeHead(out.kind === 'identity' ? 200 : 401, { 'x-test': 'yes' })
    res.end(out.kind === 'identity' ? `hello ${out.identity.name}\n` : `denied ${out.kind === 'deny' ? out.code : out.kind}\n`)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pools/1?x=1`
  const ok = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', '-d', 'payload', url, '--send'], { S: KEY })
  t.same(ok, { code: 0, stdout: 'hello signed:w1\n', stderr: '' })
  const inc = await cli('sign', ['--scheme', 'worker-v1', '--id', 'w9', '--secret-env', 'S', '-i', '--send', url], { S: KEY })
  t.equal(inc.code, 0)
  t.match(inc.stdout, /^HTTP\/1.1 200\n[\s\S]*x-test: yes\n[\s\S]*\n\nhello workers:w9\n$/)
  const bad = await cli('sign', ['--scheme', 'rfc9421', '--key-id', 'w1', '--secret-env', 'S', url, '--send'], { S: 'wrong-0123456789abcdef0123456789abcdef' })
  t.same(bad, { code: 1, stdout: 'denied INVALID_SIGNATURE\n', stderr: 'sign: HTTP 401\n' })
  const down = await cli('sign', ['--scheme', 'worker-v1', '--id', 'w', '--secret-env', 'S', 'http://127.0.0.1:1/', '--send'], { S: KEY })
  t.equal(down.code, 1)
  t.match(down.stderr, /^sign: cannot reach http:\/\/127\.0\.0\.1:1\/: .*ECONNREFUSED/)
})
