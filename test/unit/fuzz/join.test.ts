// Property tests of the join endpoint's parsers (DESIGN §4.7): the join body, the worker's X25519
// public key, and the wrapped answer. Random and mutated input never throws out of the parser,
// an accepted keyid is one DESIGN allows, and a tampered answer never unwraps.
import t from 'tap'
import fc from 'fast-check'
import { parseJoinBody } from '../../../src/auth/join.js'
import { generateX25519, importRawX25519, unwrapWorkerKey, wrapWorkerKey } from '../../../src/auth/join-wrap.js'
import { holds, latin1String, mutation, params, trickyChar } from './settings.js'

const worker = generateX25519()
const VALID = JSON.stringify({ keyid: 'worker-9', publicKey: worker.publicKey })

const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.record({ keyid: fc.oneof(fc.stringMatching(/^[\x21-\x7e]{1,12}$/), latin1String(20), fc.jsonValue({ maxDepth: 1 }), fc.string({ unit: 'binary', maxLength: 10 })), publicKey: fc.oneof(latin1String(50), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  mutation(VALID, fc.oneof(trickyChar, fc.constantFrom('{', '}', '[', ']', '"', ':', '\\u0000', '\\ud800', '__proto__'))),
  latin1String(60),
)

t.test('join body: random and mutated bodies never throw; an accepted keyid is 1-256 printable ASCII without ":" (DESIGN §4.7)', async (t) => {
  await holds(
    t,
    'parseJoinBody',
    fc.property(fc.oneof(jsonish.map((s) => Buffer.from(s, 'utf8')), fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b))), (body) => {
      const r = parseJoinBody(body)
      if (typeof r === 'string') return true
      if (!/^[\x21-\x7e]{1,256}$/.test(r.keyid)) throw new Error(`accepted keyid ${JSON.stringify(r.keyid)}`)
      if (r.keyid.includes(':')) throw new Error(`accepted keyid with ":" ${JSON.stringify(r.keyid)}`)
      if (r.publicKey !== undefined && typeof r.publicKey !== 'string') throw new Error('publicKey is not a string')
      return true
    }),
    params(2000),
  )
})

t.test('join body: a keyid holding ":" is refused (it would make <scheme>:<keyid> ambiguous)', async (t) => {
  t.type(parseJoinBody(Buffer.from(JSON.stringify({ keyid: 'ops:admin', publicKey: worker.publicKey }))), 'string')
})

t.test('X25519 public key: random text never throws; only canonical base64url of 32 bytes imports', async (t) => {
  const text = fc.oneof(latin1String(50), fc.uint8Array({ minLength: 30, maxLength: 34 }).map((b) => Buffer.from(b).toString('base64url')), mutation(worker.publicKey))
  await holds(
    t,
    'importRawX25519',
    fc.property(text, (s) => {
      const key = importRawX25519(s)
      if (key === undefined) return true
      const bytes = Buffer.from(s, 'base64url')
      return bytes.length === 32 && bytes.toString('base64url') === s
    }),
    params(1500),
  )
})

t.test('join answer: any tampering with keyid, serverPublicKey, nonce or wrappedKey makes unwrapping fail', async (t) => {
  const KEY = 'a'.repeat(64)
  const answer = wrapWorkerKey('worker-9', KEY, importRawX25519(worker.publicKey)!)
  const field = fc.constantFrom('keyid', 'serverPublicKey', 'nonce', 'wrappedKey') as fc.Arbitrary<keyof typeof answer>
  const b64char = fc.constantFrom(...'AQgwBb09_-'.split(''))
  await holds(
    t,
    'unwrapWorkerKey',
    fc.property(field.chain((f) => fc.tuple(fc.constant(f), mutation(answer[f], b64char))), ([f, m]) => {
      let got: string | undefined
      try {
        got = unwrapWorkerKey({ ...answer, [f]: m }, 'worker-9', worker.privateKey)
      } catch {
        return true
      }
      // base64url's spare bits in a last character decode to the same bytes: the same answer, not a forgery.
      const same = f !== 'keyid' && Buffer.from(m, 'base64url').equals(Buffer.from(answer[f], 'base64url'))
      if (!same) throw new Error(`tampered ${f} unwrapped to ${got === KEY ? 'the key' : 'something'}`)
      return true
    }),
    params(300),
  )
})
