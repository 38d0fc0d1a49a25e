// `npm test`: runs every compiled test file under tap and ends with one line `N passed, M failed` (skipped
// tests, if any, are counted on the line before it).
// Redis-backed tests use REDIS_URL (default redis://127.0.0.1:6379). When nothing answers there, a
// redis-server from PATH is started for the run (on that port when it is free, else on a free one) and
// stopped at the end; only when there is none, PORTCULLIS_TEST_NO_REDIS tells those tests to skip.
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, readFileSync, readdirSync, statSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { tmpdir } from 'node:os'

function find(dir) {
  let out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out = out.concat(find(p))
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}

/** True when a Redis answers PING at host:port within a second (an auth error is an answer too). */
function redisAnswers(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let reply = ''
    const done = (ok) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), 1000)
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (d) => {
      reply += d
      if (reply.includes('\r\n')) done(/^(\+PONG|-NOAUTH|-WRONGPASS|-ERR)/.test(reply))
    })
    socket.on('error', () => done(false))
    socket.on('close', () => done(false))
  })
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      // not here
    }
  }
  return undefined
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** Finds or starts a Redis: { env for the tests, stop(), note }. */
async function provideRedis() {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  let target
  try {
    target = new URL(url)
  } catch {
    return { env: { REDIS_URL: url }, stop: async () => {}, note: `redis: REDIS_URL is not a URL; Redis-backed tests will fail` }
  }
  const host = target.hostname || '127.0.0.1'
  const port = Number(target.port || 6379)
  const server = onPath('redis-server')
  const found = server ? { REDIS_SERVER: server } : {}
  if (await redisAnswers(host, port)) return { env: { REDIS_URL: url, ...found }, stop: async () => {}, note: `redis: using ${host}:${port}` }
  if (!server) {
    return {
      env: { REDIS_URL: url, PORTCULLIS_TEST_NO_REDIS: '1' },
      stop: async () => {},
      note: `redis: nothing answers at ${host}:${port} and no redis-server on PATH: Redis-backed tests are skipped`,
    }
  }
  const local = host === '127.0.0.1' || host === 'localhost'
  const chosen = local && (await portFree(port)) ? port : await freePort()
  const child = spawn(server, ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()], { stdio: 'ignore' })
  child.on('error', () => undefined)
  let up = false
  for (let i = 0; i < 100 && !up && child.exitCode === null; i++) {
    up = await redisAnswers('127.0.0.1', chosen)
    if (!up) await new Promise((r) => setTimeout(r, 50))
  }
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      child.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      child.kill('SIGTERM')
    })
  if (!up) {
    await stop()
    return { env: { REDIS_URL: url, PORTCULLIS_TEST_NO_REDIS: '1' }, stop: async () => {}, note: `redis: ${server} did not start: Redis-backed tests are skipped` }
  }
  return { env: { REDIS_URL: `redis://127.0.0.1:${chosen}`, ...found }, stop, note: `redis: started ${server} on 127.0.0.1:${chosen} for this run` }
}

// PORTCULLIS_TEST_TAP_RUNNER: only run.mjs's own test replaces tap's runner (test/fixtures/direct-tap.mjs).
const TAP = process.env.PORTCULLIS_TEST_TAP_RUNNER ?? 'node_modules/tap/dist/esm/run.mjs'
// tap builds its plugin set from package.json's "tap.plugin" (which drops the TypeScript loader: the
// tests are compiled by tsc). A fresh clone has only the default set, so build ours first — unless it is
// built already, since a rebuild replaces files under node_modules that a concurrent run is loading.
const built = (() => {
  if (process.env.PORTCULLIS_TEST_TAP_RUNNER) return true
  try {
    const index = readFileSync('node_modules/@tapjs/test/test-built/dist/esm/index.js', 'utf8')
    return index.includes('@tapjs/asserts') && !index.includes('@tapjs/typescript')
  } catch {
    return false
  }
})()
const build = built ? { status: 0 } : spawnSync(process.execPath, [TAP, 'build'], { stdio: ['ignore', 'ignore', 'inherit'] })
if (build.status !== 0) {
  process.stdout.write('\n0 passed, 1 failed\n')
  process.exit(1)
}

const files = process.argv.length > 2 ? process.argv.slice(2) : find('dist/test').sort()
const redis = await provideRedis()
process.stderr.write(redis.note + '\n')
const tap = spawn(process.execPath, [TAP, '--reporter=tap', '--jobs=2', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, ...redis.env },
})
let stopping = false
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    tap.kill(signal)
  })
}
let summary
let buffered = ''
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  buffered = (buffered + chunk).slice(-4096)
})
tap.on('close', async (code) => {
  await redis.stop()
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, todo: (\d+))?(?:, skip: (\d+))? \}/.exec(buffered)
  if (m) summary = { pass: Number(m[2] ?? 0), fail: Number(m[3] ?? 0), todo: Number(m[4] ?? 0), skip: Number(m[5] ?? 0) }
  const failed = summary ? summary.fail + (code !== 0 && summary.fail === 0 ? 1 : 0) : 1
  const passed = summary ? summary.pass : 0
  const skipped = summary ? summary.skip + summary.todo : 0
  const why = redis.env.PORTCULLIS_TEST_NO_REDIS && skipped ? ' (Redis-backed: no Redis and no redis-server on PATH)' : ''
  if (skipped) process.stdout.write(`\n${skipped} skipped${why}`)
  process.stdout.write(`\n${passed} passed, ${failed} failed\n`)
  process.exit(failed === 0 && code === 0 ? 0 : 1)
})
