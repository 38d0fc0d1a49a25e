// RFC 9530 Content-Digest: the RFC's values reproduced, and every fault reported as a value.
import t from 'tap'
import { computeContentDigest, verifyContentDigest } from '../../../src/auth/content-digest.js'

const HELLO = Buffer.from('{"hello": "world"}\n')
const RFC9421_BODY = Buffer.from('{"hello": "world"}')

t.test('the RFC examples', async (t) => {
  t.equal(computeContentDigest(HELLO), 'sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:', 'RFC 9530 appendix B')
  t.equal(
    computeContentDigest(RFC9421_BODY, 'sha-512'),
    'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
    'RFC 9421 test-request',
  )
  t.equal(computeContentDigest('{"hello": "world"}'), computeContentDigest(RFC9421_BODY), 'a string is its UTF-8 bytes')
})

t.test('verify', async (t) => {
  const s256 = computeContentDigest(HELLO)
  const s512 = computeContentDigest(HELLO, 'sha-512')
  t.equal(verifyContentDigest(s256, HELLO), 'ok')
  t.equal(verifyContentDigest(s512, HELLO), 'ok')
  t.equal(verifyContentDigest(`${s256}, ${s512}`, HELLO), 'ok')
  t.equal(verifyContentDigest(s256, Buffer.from('{"hello": "world"}')), 'mismatch')
  t.equal(verifyContentDigest(`${s256}, ${computeContentDigest('x', 'sha-512')}`, HELLO), 'mismatch', 'every member must match')
  t.equal(verifyContentDigest('sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg==:', HELLO), 'malformed', 'over-padded base64')
  t.equal(verifyContentDigest(`md5=:XUFAKrxLKna5cZ2REBfFkg==:`, HELLO), 'unsupported')
  t.equal(verifyContentDigest(`${s256}, sha=:AAAA:`, HELLO), 'unsupported', 'unsupported even beside a good one')
  t.equal(verifyContentDigest('SHA-256=:AAAA:', HELLO), 'malformed', 'keys are lower-case')
  t.equal(verifyContentDigest('sha-256="RK/0"', HELLO), 'malformed')
  t.equal(verifyContentDigest('sha-256=(:AAAA:)', HELLO), 'malformed')
  t.equal(verifyContentDigest('sha-256', HELLO), 'malformed', 'boolean member')
  t.equal(verifyContentDigest('', HELLO), 'malformed')
  t.equal(verifyContentDigest('sha-256=:AAAA:', HELLO), 'mismatch', 'short digest is a mismatch, not a throw')
  t.equal(verifyContentDigest(computeContentDigest(''), Buffer.alloc(0)), 'ok', 'empty body')
})

t.test('verifyContentDigest takes an already parsed Dictionary too', async (t) => {
  const { parseDictionary } = await import('structured-headers')
  const body = Buffer.from('{"a":1}')
  t.equal(verifyContentDigest(parseDictionary(computeContentDigest(body)), body), 'ok')
  t.equal(verifyContentDigest(parseDictionary(computeContentDigest('other')), body), 'mismatch')
})
