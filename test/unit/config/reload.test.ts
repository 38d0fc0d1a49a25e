// The reloader in-process: a good file is applied, a bad one refused with FILE:LINE:COL findings and the
// old config untouched, a same-bytes rewrite does nothing, listener keys are kept and reported.
import t from 'tap'
import { closeSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { keepListeners, watchConfig } from '../../../src/config/reload.js'
import { loadConfigText } from '../../../src/config/load.js'
import type { Gateway } from '../../../src/config/compile.js'
import type { AuthRequest } from '../../../src/auth/types.js'

const ENV = { RELOAD_TOKEN: 'r'.repeat(40) }

function yaml(opts: { listen?: string; admin?: string; roles?: string; extra?: string } = {}): string {
  return `version: 1
server:
  listen: ${opts.listen ?? '127.0.0.1:8080'}
${opts.admin ? `admin:\n  listen: ${opts.admin}\n` : ''}upstreams:
  app: { url: http://127.0.0.1:9000 }
identities:
  - name: op
    roles: [ops]
    bearer: ["\${env:RELOAD_TOKEN}"]
routes:
  - prefix: /
    upstream: app
    auth: [bearer]
    roles: [${opts.roles ?? 'ops'}]
${opts.extra ?? ''}`
}

function compile(text: string): Gateway {
  const r = loadConfigText(text, 'gateway.yaml', ENV)
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'))
  return r.gateway
}

function bearerOf(gw: Gateway, token: string): string | undefined {
  const req = { raw: { headers: { authorization: `Bearer ${token}` } }, method: 'GET', path: '/', query: '', target: '/', tls: false, now: Date.now() } as unknown as AuthRequest
  const out = gw.authenticators.get('bearer')!.authenticate(req) as { kind: string; identity?: { name: string } }
  return out.kind === 'identity' ? out.identity!.name : undefined
}

function fakeLogger() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = []
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push({ level, obj, msg })
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger }
}

t.test('keepListeners: listener changes are reported and the running values kept', async (t) => {
  const current = compile(yaml({ admin: '127.0.0.1:9901' }))
  const same = compile(yaml({ admin: '127.0.0.1:9901', roles: 'other' }))
  t.same(keepListeners(current, same), [])

  const moved = compile(yaml({ listen: '127.0.0.1:8081', admin: '127.0.0.1:9902' }))
  t.same(keepListeners(current, moved), ['server.listen', 'admin.listen'])
  t.same(moved.server.listen, { host: '127.0.0.1', port: 8080 }, 'the running listener is what the config in service says')
  t.same(moved.admin, { listen: { host: '127.0.0.1', port: 9901 } })

  const noAdmin = compile(yaml())
  t.same(keepListeners(current, noAdmin), ['admin.listen'])
  t.same(noAdmin.admin, current.admin, 'the admin listener keeps running until a restart')
})

t.test('watchConfig: apply good, refuse bad, skip identical bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, yaml())
  let current = compile(yaml())
  const applied: Gateway[] = []
  const results: string[] = []
  const { lines, logger } = fakeLogger()
  const reloader = watchConfig({
    file,
    logger,
    current: () => current,
    apply: (next) => {
      applied.push(next)
      current = next
      return []
    },
    onResult: (r) => results.push(r),
    sighup: false,
    pollMs: 60_000, // explicit reloads only here; the poll has its own test below
    env: ENV,
  })
  t.teardown(() => reloader.close())

  writeFileSync(file, yaml({ roles: 'readers' }))
  t.equal(await reloader.reload('test'), 'ok')
  t.equal(applied.length, 1)
  t.ok(current.routes[0]!.roles!.plain.has('readers'), 'the new config is in service')
  t.match(lines.at(-1), { level: 'info', msg: 'config.reload', obj: { event: 'config.reload', result: 'ok', trigger: 'test', config: file } })

  writeFileSync(file, yaml({ extra: 'unknownKey: 1\n' }))
  t.equal(await reloader.reload('test'), 'error')
  t.equal(applied.length, 1, 'a bad file is never applied')
  const err = lines.at(-1)!
  t.equal(err.level, 'error')
  t.equal(err.msg, 'config.reload')
  t.match(err.obj, { event: 'config.reload', result: 'error' })
  t.match((err.obj.errors as string[])[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: error: .*unknownKey`))

  writeFileSync(file, yaml({ roles: 'readers' }).replace('RELOAD_TOKEN', 'NOT_SET_ANYWHERE'))
  t.equal(await reloader.reload('test'), 'error', 'an unresolved secret is refused')
  t.match((lines.at(-1)!.obj.errors as string[]).join('\n'), /identities\[0\]\.bearer/)

  writeFileSync(file, yaml({ roles: 'writers' }))
  t.equal(await reloader.reload('watch'), 'ok')
  t.equal(await reloader.reload('watch'), 'unchanged', 'the same bytes again do nothing on a watch')
  t.equal(await reloader.reload('SIGHUP'), 'ok', 'SIGHUP always reloads (secrets files may have changed)')
  t.same(results, ['ok', 'error', 'error', 'ok', 'ok'])
})

t.test('watchConfig: the poll picks up a rewrite without being asked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, yaml())
  let current = compile(yaml())
  const { logger } = fakeLogger()
  const reloader = watchConfig({ file, logger, current: () => current, apply: (n) => ((current = n), []), sighup: false, pollMs: 50, env: ENV })
  t.teardown(() => reloader.close())
  // The poll's first stat is its baseline: a write before it lands would look like no change at all.
  await new Promise((r) => setTimeout(r, 300))
  writeFileSync(file, yaml({ roles: 'auditors' }))
  const until = Date.now() + 5000
  while (!current.routes[0]!.roles!.plain.has('auditors') && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  t.ok(current.routes[0]!.roles!.plain.has('auditors'), 'the poll saw the change')
})

t.test('a missing file is an error line, not a crash; listener changes log a warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  const file = join(dir, 'gateway.yaml')
  let current = compile(yaml())
  const { lines, logger } = fakeLogger()
  const reloader = watchConfig({ file, logger, current: () => current, apply: (n) => ((current = n), ['state.store']), sighup: false, env: ENV })
  t.teardown(() => reloader.close())
  t.equal(await reloader.reload('test'), 'error')
  t.match((lines.at(-1)!.obj.errors as string[])[0], /gateway\.yaml:1:1: error: cannot read config file \(ENOENT\)/)

  writeFileSync(file, yaml({ listen: '127.0.0.1:9999' }))
  t.equal(await reloader.reload('test'), 'ok')
  const warn = lines.at(-1)!
  t.equal(warn.level, 'warn')
  t.same(warn.obj.restartRequired, ['server.listen', 'state.store'])
  t.same(current.server.listen, { host: '127.0.0.1', port: 8080 })
})

t.test('half-written config applied: a change in place is read only after the file stayed the same for 1 s', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, yaml())
  let current = compile(yaml())
  const applied: Gateway[] = []
  const { logger } = fakeLogger()
  const reloader = watchConfig({ file, logger, current: () => current, apply: (n) => (applied.push(n), (current = n), []), sighup: false, pollMs: 50, env: ENV })
  t.teardown(() => reloader.close())
  await new Promise((r) => setTimeout(r, 300))
  const full = yaml({ roles: 'admins', extra: '  - path: /other\n    upstream: app\n    auth: [bearer]\n    roles: [ops]\n' })
  const cut = full.lastIndexOf('    roles: [ops]')
  const fd = openSync(file, 'w')
  writeSync(fd, full.slice(0, cut)) // valid alone: /other with no roles at all
  await new Promise((r) => setTimeout(r, 600))
  writeSync(fd, full.slice(cut))
  closeSync(fd)
  const until = Date.now() + 5000
  while (applied.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  await new Promise((r) => setTimeout(r, 300))
  t.equal(applied.length, 1, 'one config applied')
  t.ok(applied[0]?.routes[1]?.roles?.plain.has('ops'), 'and it is the complete file')
})

t.test('server.tls files and ${file:} secrets are re-read on every reload; new TLS contents are applied, not kept', async (t) => {
  const { makePki } = await import('../../e2e/certs.js')
  const a = makePki()
  const b = makePki()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'))
  const file = join(dir, 'gateway.yaml')
  const caFile = join(dir, 'client-ca.crt')
  const tokenFile = join(dir, 'token')
  writeFileSync(caFile, a.ca.cert)
  writeFileSync(tokenFile, 'f'.repeat(40) + '\n')
  const text = yaml({ listen: '127.0.0.1:0' })
    .replace('server:\n', `server:\n  tls:\n    cert: ${a.server.certFile}\n    key: ${a.server.keyFile}\n    clientCa: ${caFile}\n`)
    .replace('"${env:RELOAD_TOKEN}"', `"\${file:${tokenFile}}"`)
  writeFileSync(file, text)
  let current = compile(text)
  t.ok(current.server.tls!.secureContext.ca, 'the compiled gateway carries the options for setSecureContext')
  t.equal(String(current.server.tls!.secureContext.ca), a.ca.cert)
  const { lines, logger } = fakeLogger()
  const reloader = watchConfig({ file, logger, current: () => current, apply: (n) => ((current = n), []), sighup: false, pollMs: 60_000, env: ENV })
  t.teardown(() => reloader.close())

  writeFileSync(caFile, b.ca.cert) // CA a removed, CA b trusted instead
  writeFileSync(tokenFile, 'g'.repeat(40) + '\n')
  t.equal(await reloader.reload('SIGHUP'), 'ok')
  t.equal(lines.at(-1)!.level, 'info', 'no restart required for new TLS file contents')
  t.equal(String(current.server.tls!.secureContext.ca), b.ca.cert, 'the removed CA is gone from the config in service')
  t.notOk(String(current.server.tls!.clientCa).includes(a.ca.cert))
  t.equal(bearerOf(current, 'g'.repeat(40)), 'op', 'the ${file:} secret was read afresh')
  t.equal(bearerOf(current, 'f'.repeat(40)), undefined, 'the old token is gone')

  writeFileSync(join(dir, 'bad.key'), 'not a key')
  writeFileSync(file, text.replace(a.server.keyFile, join(dir, 'bad.key')))
  t.equal(await reloader.reload('SIGHUP'), 'error', 'a key that does not load is a config error, not a failure at the first handshake')
  t.match((lines.at(-1)!.obj.errors as string[]).join('\n'), /server\.tls/)
})

t.test('keepListeners: adding or removing TLS or clientCa needs a restart; other TLS changes do not', async (t) => {
  const { makePki } = await import('../../e2e/certs.js')
  const a = makePki()
  const withTls = (ca: boolean) =>
    yaml().replace('server:\n', `server:\n  tls:\n    cert: ${a.server.certFile}\n    key: ${a.server.keyFile}\n${ca ? `    clientCa: ${a.ca.certFile}\n` : ''}`)
  const current = compile(withTls(true))
  t.same(keepListeners(current, compile(withTls(true))), [])
  const plain = compile(yaml())
  t.same(keepListeners(current, plain), ['server.tls'])
  t.same(plain.server.tls, current.server.tls, 'the running listener keeps its TLS until a restart')
  t.same(keepListeners(current, compile(withTls(false))), ['server.tls'], 'clientCa added or removed changes requestCert: restart')
})
