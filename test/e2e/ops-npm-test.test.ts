// `npm test` without a Redis answering (DESIGN §1): test/run.mjs starts a redis-server from PATH for the
// run and stops it after; only when there is none are the Redis-backed tests skipped — counted as skipped.
// tap's runner is replaced by test/fixtures/direct-tap.mjs (node per file, summed summary), so this tests
// run.mjs itself, not tap's plugin build under node_modules.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const FIXTURE = 'test/fixtures/redis-probe.mjs'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** run.mjs as `npm test` runs it, outside this tap run (its TAP_* variables would make it a child). */
function runSuite(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAP') && k !== 'REDIS_URL' && k !== 'REDIS_SERVER' && k !== 'PORTCULLIS_TEST_NO_REDIS'))
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['test/run.mjs', FIXTURE], { cwd: ROOT, env: { ...clean, PORTCULLIS_TEST_TAP_RUNNER: 'test/fixtures/direct-tap.mjs', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim()

t.test('no Redis answering and no redis-server on PATH: the Redis test is skipped, and counted so', async (t) => {
  const port = await freePort()
  const r = await runSuite({ PATH: mkdtempSync(join(tmpdir(), 'pc-empty-path-')), REDIS_URL: `redis://127.0.0.1:${port}` })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stderr, /no redis-server on PATH: Redis-backed tests are skipped/)
  t.match(r.stdout, /\n1 skipped \(Redis-backed: no Redis and no redis-server on PATH\)\n1 passed, 0 failed\n$/, 'the skip counted on its own line, the last line exactly N passed, M failed')
  t.notMatch(r.stdout, /ok \d+ - redis answers PING at REDIS_URL(?! # SKIP)/, 'never reported as passed')
})

t.test('no Redis answering, redis-server on PATH: started for the run on that port, stopped after', { skip: which ? false : 'no redis-server on this machine' }, async (t) => {
  const port = await freePort()
  const r = await runSuite({ PATH: `${dirname(which)}:${process.env.PATH ?? ''}`, REDIS_URL: `redis://127.0.0.1:${port}` })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stderr, new RegExp(`redis: started .*redis-server on 127\\.0\\.0\\.1:${port} for this run`))
  t.match(r.stdout, /\n3 passed, 0 failed\n$/, 'the Redis test ran and passed; nothing skipped')
  t.ok(await portFree(port), 'the redis-server was stopped at the end')
})
