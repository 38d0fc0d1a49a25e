// `npm test`: runs every compiled test file under tap and ends with one line `N passed, M failed`.
// Redis-backed tests use REDIS_URL (default redis://127.0.0.1:6379).
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function find(dir) {
  let out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out = out.concat(find(p))
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}

const TAP = 'node_modules/tap/dist/esm/run.mjs'
// tap builds its plugin set from package.json's "tap.plugin" (which drops the TypeScript loader: the
// tests are compiled by tsc). A fresh clone has only the default set, so build ours first.
// Built already (the default set without @tapjs/typescript): skip, since a rebuild replaces the files
// under node_modules that a concurrently running suite is loading.
const built = (() => {
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
const tap = spawn(process.execPath, [TAP, '--reporter=tap', '--jobs=2', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
})
let summary
let buffered = ''
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  buffered = (buffered + chunk).slice(-4096)
})
tap.on('close', (code) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, todo: (\d+))?(?:, skip: (\d+))? \}/.exec(buffered)
  if (m) summary = { pass: Number(m[2] ?? 0), fail: Number(m[3] ?? 0), todo: Number(m[4] ?? 0), skip: Number(m[5] ?? 0) }
  const failed = summary ? summary.fail + (code !== 0 && summary.fail === 0 ? 1 : 0) : 1
  const passed = summary ? summary.pass : 0
  const skipped = summary ? summary.skip + summary.todo : 0
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  process.exit(failed === 0 && code === 0 ? 0 : 1)
})
