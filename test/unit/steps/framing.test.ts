// Step 0 (DESIGN §3): framing a gateway must not pass on. Each refusal is 400 BAD_REQUEST and closes
// the connection, since where the request ends is in doubt.
import t from 'tap'
import { checkFraming } from '../../../src/steps/framing.js'
import { fakeRequest } from './fakes.js'

const refused = (message: RegExp) => ({ code: 'BAD_REQUEST', message, close: true })

t.test('CONNECT is refused and closes', async (t) => {
  t.match(checkFraming(fakeRequest({ method: 'CONNECT', url: 'upstream.internal:443' }), false), refused(/CONNECT/))
  t.match(checkFraming(fakeRequest({ method: 'CONNECT', url: 'upstream.internal:443' }), true), refused(/CONNECT/), 'also on the socket path')
})

t.test('exactly one Host: none or two are refused; HTTP/1.0 may have none', async (t) => {
  t.match(checkFraming(fakeRequest({ noHost: true }), false), refused(/Host/), 'HTTP/1.1 without Host')
  t.match(checkFraming(fakeRequest({ headers: [['Host', 'other.test']] }), false), refused(/Host/), 'two Hosts (any case)')
  t.match(checkFraming(fakeRequest({ httpVersion: '1.0', headers: [['host', 'b.test']] }), false), refused(/Host/), 'HTTP/1.0 with two Hosts')
  t.equal(checkFraming(fakeRequest({ httpVersion: '1.0', noHost: true }), false), undefined, 'HTTP/1.0 without Host passes')
  t.equal(checkFraming(fakeRequest(), false), undefined, 'one Host passes')
})

t.test('Expect: 100-continue in any case passes; anything else is refused', async (t) => {
  for (const v of ['100-continue', '100-Continue', '100-CONTINUE', ' 100-continue ']) {
    t.equal(checkFraming(fakeRequest({ method: 'POST', headers: [['expect', v]] }), false), undefined, JSON.stringify(v))
  }
  for (const v of ['200-ok', '', '100-continue, 200-ok', 'continue']) {
    t.match(checkFraming(fakeRequest({ method: 'POST', headers: [['expect', v]] }), false), refused(/Expect/), JSON.stringify(v))
  }
})

t.test('Transfer-Encoding on HTTP/1.0 is refused', async (t) => {
  const req = fakeRequest({ method: 'POST', httpVersion: '1.0', headers: [['transfer-encoding', 'chunked']] })
  t.match(checkFraming(req, false), refused(/Transfer-Encoding/))
  t.equal(checkFraming(fakeRequest({ method: 'POST', headers: [['transfer-encoding', 'chunked']] }), false), undefined, 'HTTP/1.1 chunked passes')
})

t.test('a request line without a version (HTTP/0.9 to the parser) is refused', async (t) => {
  t.match(checkFraming(fakeRequest({ httpVersion: '0.9' }), false), refused(/HTTP\/1/), 'HTTP/0.9')
  t.equal(checkFraming(fakeRequest({ httpVersion: '1.0' }), false), undefined, 'HTTP/1.0')
})

t.test('an upgrade that declares a body is refused; Content-Length: 0 passes', async (t) => {
  const up: Array<[string, string]> = [['connection', 'upgrade'], ['upgrade', 'websocket']]
  t.match(checkFraming(fakeRequest({ headers: [...up, ['content-length', '5']] }), true), refused(/upgrade/i), 'CL > 0')
  t.match(checkFraming(fakeRequest({ headers: [...up, ['transfer-encoding', 'chunked']] }), true), refused(/upgrade/i), 'TE chunked')
  t.match(checkFraming(fakeRequest({ headers: [...up, ['transfer-encoding', 'identity']] }), true), refused(/upgrade/i), 'any TE')
  t.equal(checkFraming(fakeRequest({ headers: [...up, ['content-length', '0']] }), true), undefined, 'CL 0')
  t.equal(checkFraming(fakeRequest({ headers: up }), true), undefined, 'no body')
  t.equal(checkFraming(fakeRequest({ method: 'POST', headers: [['content-length', '5']] }), false), undefined, 'a body on a plain request is fine')
  // DESIGN §3 step 0 names the request by `Connection: upgrade`, whether or not Node emits 'upgrade' for it.
  t.match(checkFraming(fakeRequest({ method: 'POST', headers: [['connection', 'keep-alive, Upgrade'], ['content-length', '5']] }), false), refused(/upgrade/i), 'Connection: upgrade without Upgrade, with a body')
  t.equal(checkFraming(fakeRequest({ method: 'POST', headers: [['connection', 'x-upgraded'], ['content-length', '5']] }), false), undefined, 'only the upgrade token counts')
})
