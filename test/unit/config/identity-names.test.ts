// Config rules added for issue 10: identity and scheme names that could collide (DESIGN §3.3), bearer
// tokens no client could send (§4.1), and server.authorities (§2). Each is one FILE:LINE:COL error
// naming the field, never quoting a secret.
import t from 'tap'
import { formatFinding, loadConfigText, type Finding, type LoadResult } from '../../../src/config/load.js'

const FILE = '/etc/portcullis/gateway.yaml'
const TOKEN = 'tok-' + 'a1b2c3d4'.repeat(5)
const SPACED = 'has space ' + 'a1b2c3d4'.repeat(5)
const NBSP = 'tok-' + 'a1b2c3d4'.repeat(5) + '\u00a0'
const SECRET = 'k'.repeat(40)
const ENV = { TOKEN_A: TOKEN, SPACED, NBSP, SECRET }

function config(o: { server?: string; identities?: string; schemes?: string } = {}): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
${o.server ?? ''}upstreams:
  be: { url: "http://127.0.0.1:9000" }
identities:
  - name: ops
    bearer: "\${env:TOKEN_A}"
${o.identities ?? ''}${o.schemes ? `schemes:\n${o.schemes}` : ''}routes:
  - { path: /x, upstream: be, auth: [bearer] }
`
}

function errorsOf(r: LoadResult): Finding[] {
  return r.ok ? [] : r.errors
}

function pos(text: string, needle: string): { line: number; col: number } {
  const at = text.indexOf(needle)
  if (at === -1) throw new Error(`${needle} not in config`)
  const before = text.slice(0, at).split('\n')
  return { line: before.length, col: before[before.length - 1]!.length + 1 }
}

function oneErrorAt(t: Pick<typeof import('tap').default, 'equal' | 'same' | 'match' | 'notMatch'>, text: string, needle: string, pattern: RegExp): void {
  const r = loadConfigText(text, FILE, ENV)
  const errors = errorsOf(r)
  t.equal(errors.length, 1, errors.map(formatFinding).join(' | '))
  const e = errors[0]
  if (!e) return
  t.same({ line: e.line, col: e.col }, pos(text, needle), formatFinding(e))
  t.match(e.message, pattern)
  for (const secret of [TOKEN, SPACED, NBSP]) t.notMatch(formatFinding(e), secret)
}

t.test('an identity name holding ":" or naming localhost / anonymous collided with other identities', async (t) => {
  for (const name of ['signed:ops', 'localhost', 'anonymous']) {
    const text = config({ identities: `  - name: "${name}"\n    bearer: "\${env:SECRET}"\n` })
    oneErrorAt(t, text, `"${name}"`, /identities\[1\]\.name|name/)
  }
  t.equal(loadConfigText(config({ identities: '  - name: local-host\n    bearer: "${env:SECRET}"\n' }), FILE, ENV).ok, true, 'other names are fine')
})

t.test('a scheme named join would share the join endpoint identities join:<keyid>', async (t) => {
  const text = config({ schemes: '  join:\n    type: worker-v1\n    secret: "${env:SECRET}"\n' })
  // Reported at the scheme's body, as the loader places every error about a map entry.
  oneErrorAt(t, text, 'type: worker-v1', /schemes\.join.*not "join"/)
  const colon = config({ schemes: '  "a:b":\n    type: worker-v1\n    secret: "${env:SECRET}"\n' })
  t.equal(loadConfigText(colon, FILE, ENV).ok, false, 'a scheme name holding ":" is refused')
})

t.test('a configured bearer token that is not RFC 6750 b64token is a config error', async (t) => {
  for (const ref of ['SPACED', 'NBSP']) {
    const text = config({ identities: `  - name: other\n    bearer: "\${env:${ref}}"\n` })
    oneErrorAt(t, text, `"\${env:${ref}}"`, /b64token/)
  }
  const padded = { ...ENV, PADDED: 'abc.DEF-ghi_jkl~mno+pqr/stu' + '0'.repeat(10) + '==' }
  const ok = loadConfigText(config({ identities: '  - name: other\n    bearer: "${env:PADDED}"\n' }), FILE, padded)
  t.equal(ok.ok, true, errorsOf(ok).map(formatFinding).join(' | '))
})

t.test('server.authorities: optional, each entry host or host:port', async (t) => {
  const none = loadConfigText(config(), FILE, ENV)
  t.equal(none.ok && none.gateway.server.authorities, undefined, 'absent: not checked')
  const good = loadConfigText(config({ server: '  authorities: [gw.internal, "gw.internal:8443", "[::1]:8080", 10.0.0.5]\n' }), FILE, ENV)
  if (!good.ok) return t.fail(good.errors.map(formatFinding).join(' | '))
  t.ok(good.gateway.server.authorities?.allows('gw.internal:1', 'http'))
  for (const bad of ['"http://gw.internal"', '"gw.internal:99999"', '"gw/x"']) {
    const text = config({ server: `  authorities: [ok.internal, ${bad}]\n` })
    oneErrorAt(t, text, bad, /host/)
  }
})
