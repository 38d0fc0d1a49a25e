// Day-one CLI (DESIGN §1): every subcommand's own --help, --version, keygen's 32-character floor, and
// `schema` — the JSON Schema shipped as docs/gateway.schema.json and named by gateway.yaml's first line.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { runCli } from './harness.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const cli = (args: string[]) => runCli(args, {}, undefined, 60_000)
const COMMANDS = ['serve', 'check', 'schema', 'keygen', 'fingerprint', 'sign', 'derive-key', 'mint', 'join', 'version']

t.test('every subcommand answers --help with its own usage, exit 0', async (t) => {
  const results = await Promise.all(COMMANDS.map((c) => cli([c, '--help'])))
  COMMANDS.forEach((c, i) => {
    const r = results[i]!
    t.equal(r.code, 0, `${c} --help exits 0 (${r.stderr})`)
    t.match(r.stdout, new RegExp(`^usage: portcullis ${c}\\b`), `${c} --help prints ${c}'s usage`)
    t.equal(r.stderr, '', `${c} --help writes nothing on stderr`)
  })
  const short = await cli(['sign', '-h'])
  t.equal(short.code, 0)
  t.match(short.stdout, /^usage: portcullis sign/)
  t.match(short.stdout, /--cacert FILE/, 'sign documents --cacert')
  const serveHelp = await cli(['serve', '--config', '/nonexistent/gateway.yaml', '--help'])
  t.equal(serveHelp.code, 0, 'serve --help does not try to start a gateway')
})

t.test('--version and version print "portcullis <version>" from package.json', async (t) => {
  const [flag, word] = await Promise.all([cli(['--version']), cli(['version'])])
  t.same(flag, { code: 0, stdout: `portcullis ${PKG.version}\n`, stderr: '' })
  t.same(word, { code: 0, stdout: `portcullis ${PKG.version}\n`, stderr: '' })
})

t.test('keygen refuses (exit 2) a size whose text is shorter than 32 characters', async (t) => {
  const [hex15, hex16, b64_23, b64_24, bad] = await Promise.all([
    cli(['keygen', '--bytes', '15']),
    cli(['keygen', '--bytes', '16']),
    cli(['keygen', '--bytes', '23', '--encoding', 'base64url']),
    cli(['keygen', '--bytes', '24', '--encoding', 'base64url']),
    cli(['keygen', '--bytes', '16abc']),
  ])
  t.equal(hex15.code, 2, '15 bytes hex = 30 characters: refused')
  t.equal(hex15.stdout, '', 'nothing printed')
  t.match(hex15.stderr, /at least 32 characters/)
  t.equal(hex16.code, 0)
  t.match(hex16.stdout, /^[0-9a-f]{32}\n$/)
  t.equal(b64_23.code, 2, '23 bytes base64url = 31 characters: refused')
  t.equal(b64_24.code, 0)
  t.match(b64_24.stdout, /^[A-Za-z0-9_-]{32}\n$/)
  t.equal(bad.code, 2, 'not a number: refused')
})

t.test('schema prints a draft 2020-12 JSON Schema that the shipped gateway.yaml satisfies', async (t) => {
  const r = await cli(['schema'])
  t.equal(r.code, 0)
  const schema = JSON.parse(r.stdout) as Record<string, unknown>
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema')
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  const validate = ajv.compile(schema)
  const shipped = parseYaml(readFileSync(join(ROOT, 'gateway.yaml'), 'utf8')) as unknown
  t.ok(validate(shipped), `gateway.yaml validates: ${JSON.stringify(validate.errors)}`)
  t.notOk(validate({ ...(shipped as object), routes: [{ path: '/x', upstream: 'orchestrator', pubilc: true }] }), 'a typo of a key is an error')
  t.notOk(validate({ ...(shipped as object), schemes: { w: { type: 'worker-v1', secret: '${env:X}', windw: '5m' } } }), 'a scheme body is checked by its type')
})

t.test('docs/gateway.schema.json is up to date (regenerate: portcullis schema > docs/gateway.schema.json)', async (t) => {
  const r = await cli(['schema'])
  t.equal(readFileSync(join(ROOT, 'docs', 'gateway.schema.json'), 'utf8'), r.stdout)
  const first = readFileSync(join(ROOT, 'gateway.yaml'), 'utf8').split('\n')[0]
  t.equal(first, '# yaml-language-server: $schema=./docs/gateway.schema.json', 'gateway.yaml names the shipped schema for editors')
})
