// /metrics of a real gateway (DESIGN §6): build info, the last successful reload, and the last-used series
// of a credential rotated out of the config dropped at the reload that removes it.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { tokenFingerprint } from '../../src/auth/credential.js'
import { startBackend, startGateway, testSecret } from './harness.js'

const OLD = testSecret('metricsOld')
const NEW = testSecret('metricsNew')

function config(backend: string, bearer: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
upstreams: { orchestrator: { url: "${backend}" } }
identities:
  - { name: ops, roles: [admin], bearer: ${bearer} }
routes:
  - { prefix: /v2/, upstream: orchestrator, auth: [bearer] }
`
}

t.test('rotation: the old token series goes at the reload that removes it; build info; last reload time', async (t) => {
  const backend = await startBackend()
  const gw = await startGateway(config(backend.url, '["${env:M_OLD}", "${env:M_NEW}"]'), { M_OLD: OLD, M_NEW: NEW })
  t.teardown(async () => {
    await gw.stop()
    await backend.close()
  })
  const metrics = async () => (await fetch(`${gw.adminUrl}/metrics`)).text()
  for (const token of [OLD, NEW]) t.equal((await fetch(`${gw.url}/v2/x`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
  let text = await metrics()
  t.match(text, `fingerprint="${tokenFingerprint(OLD)}"`)
  t.match(text, `fingerprint="${tokenFingerprint(NEW)}"`)
  t.match(text, /^portcullis_build_info\{version="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m)
  const stamp = (s: string) => Number(/^portcullis_config_last_reload_success_timestamp_seconds (\S+)$/m.exec(s)?.[1])
  const atStart = stamp(text)
  t.ok(atStart > 0, 'set at start')

  writeFileSync(gw.configFile, config(backend.url, '"${env:M_NEW}"'))
  gw.child.kill('SIGHUP')
  await gw.waitForLog((l) => l.msg === 'config.reload' && l.result === 'ok', 10_000)
  text = await metrics()
  t.notMatch(text, `fingerprint="${tokenFingerprint(OLD)}"`, 'the rotated-out token lost its series')
  t.match(text, `fingerprint="${tokenFingerprint(NEW)}"`, 'the token still configured kept its series')
  t.ok(stamp(text) >= atStart, 'last reload time moved (or stayed within the same second)')
  t.match(text, 'portcullis_config_reloads_total{result="ok"} 1')
  for (const s of [OLD, NEW]) t.notOk(text.includes(s), 'no token in /metrics')
})
