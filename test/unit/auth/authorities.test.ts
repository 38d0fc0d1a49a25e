// server.authorities (DESIGN §2, §4.4): which @authority values name this gateway.
import t from 'tap'
import { compileAuthorities } from '../../../src/auth/authorities.js'

function compiled(entries: string[]) {
  const r = compileAuthorities(entries)
  if (!r.ok) throw new Error(`entry ${r.index} refused`)
  return r.authorities
}

t.test('case-insensitive; an entry without a port matches any port, one with a port that port only', async (t) => {
  const a = compiled(['GW.internal', 'api.example:8443', '[::1]:8080', '10.0.0.5'])
  for (const ok of ['gw.internal', 'gw.internal:1', 'Gw.Internal:65535', 'api.example:8443', 'API.EXAMPLE:8443', '[::1]:8080', '10.0.0.5:80', '10.0.0.5']) t.ok(a.allows(ok, 'http'), ok)
  for (const no of ['', 'gw.internal.evil', 'evil.gw.internal', 'api.example', 'api.example:443', 'api.example:84430', '[::1]', '[::1]:8081', '10.0.0.6', 'gw.internal:x', 'user@gw.internal']) t.notOk(a.allows(no, 'http'), no)
  const dflt = compiled(['api.example:443'])
  t.ok(dflt.allows('api.example', 'https'), 'no port in Host = the scheme default')
  t.notOk(dflt.allows('api.example', 'http'))
})

t.test('entries that are not host[:port] are refused with their index', async (t) => {
  for (const [bad, index] of [[['ok', 'http://x'], 1], [['x:0'], 0], [['x:65536'], 0], [['a/b'], 0], [[''], 0], [['a b'], 0]] as const) {
    t.same(compileAuthorities([...bad]), { ok: false, index }, JSON.stringify(bad))
  }
})
