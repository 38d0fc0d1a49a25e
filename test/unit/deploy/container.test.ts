// The container and host deployment as documented (issue 17): the `docker run` lines pass every secret the
// shipped gateway.yaml names and mount the config's directory; OCI labels; nothing in the Node 20 image
// requires a newer Node; the systemd unit's Documentation= is installed and key ownership is documented.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8')
const shippedSecrets = [...new Set([...read('gateway.yaml').matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!))].sort()

/** The documented `docker run` commands: the Dockerfile header's (comment lines) and deploy/README.md's. */
function dockerRuns(): Array<{ where: string; text: string }> {
  const header = read('Dockerfile')
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => l.replace(/^#\s?/, ''))
    .join('\n')
  const readme = read('deploy/README.md')
  const runs: Array<{ where: string; text: string }> = []
  for (const [where, text] of [['Dockerfile', header], ['deploy/README.md', readme]] as const) {
    for (const m of text.matchAll(/docker run (?:[^\n]*\\\n)*[^\n]*/g)) runs.push({ where, text: m[0] })
  }
  return runs
}

t.test('every documented docker run passes each secret of the shipped config and mounts the directory', async (t) => {
  t.ok(shippedSecrets.length >= 5, `the shipped config names ${shippedSecrets.join(', ')}`)
  const runs = dockerRuns()
  t.ok(runs.some((r) => r.where === 'Dockerfile') && runs.some((r) => r.where === 'deploy/README.md'), 'documented in both places')
  for (const run of runs) {
    const passed = [...run.text.matchAll(/-e ([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!).sort()
    t.same(passed, shippedSecrets, `${run.where}: ${run.text.split('\n')[0]}`)
    const mounts = [...run.text.matchAll(/-v "?([^\s"]+)"?/g)].map((m) => m[1]!)
    t.ok(mounts.length > 0 && mounts.every((m) => /:\/etc\/portcullis(:ro)?$/.test(m)), `${run.where}: the config's directory at /etc/portcullis (${mounts})`)
    t.notMatch(run.text, /gateway\.yaml:\/etc/, `${run.where}: not a single-file mount`)
  }
})

t.test('Dockerfile: OCI labels', async (t) => {
  const text = read('Dockerfile')
  for (const label of ['title', 'description', 'version', 'licenses']) t.match(text, new RegExp(`org\\.opencontainers\\.image\\.${label}=`), label)
  t.match(text, /org\.opencontainers\.image\.licenses="Apache-2\.0"/, 'the license package.json names')
})

/** Does `range` (an engines.node value) admit this Node version? Enough of semver for engines fields. */
function admits(range: string, version: string): boolean {
  const v = version.replace(/^v/, '').split('.').map(Number) as [number, number, number]
  const cmp = (a: number[], b: number[]) => a[0]! - b[0]! || (a[1] ?? 0) - (b[1] ?? 0) || (a[2] ?? 0) - (b[2] ?? 0)
  const parts = (s: string) => s.replace(/^v/, '').split('.').map((x) => (/^\d+$/.test(x) ? Number(x) : 0))
  return range.replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1').split('||').some((alt) =>
    alt
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .every((c) => {
        const m = /^(>=|<=|>|<|\^|~|=)?(.+)$/.exec(c)!
        const op = m[1] ?? '='
        const p = parts(m[2]!)
        if (m[2] === '*' || m[2] === 'x') return true
        if (op === '>=') return cmp(v, p) >= 0
        if (op === '>') return cmp(v, p) > 0
        if (op === '<=') return cmp(v, p) <= 0
        if (op === '<') return cmp(v, p) < 0
        if (op === '^') return v[0] === p[0] && cmp(v, p) >= 0
        return v[0] === p[0] // ~, = and x-ranges at major granularity
      }),
  )
}

t.test('the image holds no runtime dependency that requires a Node newer than 20', async (t) => {
  t.ok(admits('>=20', 'v20.20.0') && !admits('>=22', 'v20.20.0') && admits('^18 || >=20', 'v20.1.0') && admits('>= 10.x', 'v20.20.0'), 'the range check itself')
  const removed = [...read('Dockerfile').matchAll(/node_modules\/([@a-z0-9._/-]+)/g)].map((m) => m[1]!).filter((n) => !n.startsWith('.'))
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
  const require = createRequire(join(ROOT, 'package.json'))
  const seen = new Map<string, string>()
  const tooNew: string[] = []
  const walk = (name: string, from: string) => {
    if (removed.includes(name)) return
    let dir: string | undefined
    for (let d = from; ; d = dirname(d)) {
      if (existsSync(join(d, 'node_modules', name, 'package.json'))) {
        dir = join(d, 'node_modules', name)
        break
      }
      if (d === dirname(d)) break
    }
    if (!dir || seen.has(dir)) return
    const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; engines?: { node?: string }; dependencies?: Record<string, string> }
    seen.set(dir, p.version)
    if (p.engines?.node && !admits(p.engines.node, 'v20.20.0')) tooNew.push(`${p.name}@${p.version} (node ${p.engines.node})`)
    for (const d of Object.keys(p.dependencies ?? {})) walk(d, dir)
  }
  for (const d of Object.keys(pkg.dependencies)) walk(d, ROOT)
  t.ok(seen.size > 20, `${seen.size} runtime packages checked`)
  t.same(tooNew, [], 'every runtime package left in the image runs on Node 20')
  // What the Dockerfile removes must never be loaded by the gateway: fastify requires light-my-request only in inject().
  const before = new Set(Object.keys(require.cache))
  require('fastify')
  const loaded = Object.keys(require.cache).filter((k) => !before.has(k))
  t.ok(loaded.some((k) => k.includes('/fastify/')), 'fastify loaded')
  for (const name of removed) t.notOk(loaded.some((k) => k.includes(`/node_modules/${name}/`)), `${name} is not loaded with fastify`)
})

t.test('systemd: Documentation= is a file the documented install copies; key ownership documented', async (t) => {
  const unit = read('deploy/systemd/portcullis.service')
  const doc = /^Documentation=file:\/\/\/opt\/portcullis\/(\S+)$/m.exec(unit)
  t.ok(doc, 'Documentation= under /opt/portcullis')
  t.ok(existsSync(join(ROOT, doc![1]!)), `${doc![1]} exists in the repo`)
  const readme = read('deploy/README.md')
  const cp = /sudo cp -r ([^\n]*) \/opt\/portcullis\//.exec(readme)
  t.ok(cp && cp[1]!.split(/\s+/).includes(doc![1]!.split('/')[0]!), `the install copies ${doc![1]!.split('/')[0]}/`)
  t.match(readme, /chown root:portcullis \/etc\/portcullis\/tls\/\*\.key/, 'keys handed to the service group')
  t.match(readme, /chmod 0640/)
  t.match(read('scripts/gen-certs.sh'), /chmod 600/, 'gen-certs does write 0600 (what the docs explain)')
})
