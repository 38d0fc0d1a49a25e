// DESIGN §4.7 key wrapping: round trip, an independent re-derivation of every step, and refusals
// (altered answer, another keyid, malformed or low-order public keys).
import t from 'tap'
import { createDecipheriv, diffieHellman, hkdfSync } from 'node:crypto'
import { generateX25519, importRawX25519, rawPublicKey, unwrapWorkerKey, wrapWorkerKey } from '../../../src/auth/join-wrap.js'
import { parseJoinBody } from '../../../src/auth/join.js'
import { deriveKey } from '../../../src/auth/derive.js'

const MASTER = 'master-0123456789abcdef0123456789abcdef'

t.test('wrap then unwrap gives the derived key back', async (t) => {
  const worker = generateX25519()
  const key = deriveKey(MASTER, 'worker-9')
  const answer = wrapWorkerKey('worker-9', key, importRawX25519(worker.publicKey)!)
  t.same(Object.keys(answer), ['keyid', 'serverPublicKey', 'nonce', 'wrappedKey'])
  for (const v of [answer.serverPublicKey, answer.nonce, answer.wrappedKey]) t.match(v, /^[A-Za-z0-9_-]+$/, 'base64url without padding')
  t.equal(Buffer.from(answer.serverPublicKey, 'base64url').length, 32)
  t.equal(Buffer.from(answer.nonce, 'base64url').length, 16)
  t.equal(Buffer.from(answer.wrappedKey, 'base64url').length, 12 + 64 + 16)
  t.equal(unwrapWorkerKey(answer, 'worker-9', worker.privateKey), key)
  const again = wrapWorkerKey('worker-9', key, importRawX25519(worker.publicKey)!)
  t.not(again.serverPublicKey, answer.serverPublicKey, 'a fresh server key pair per answer')
  t.not(again.nonce, answer.nonce)
})

t.test('each step as DESIGN §4.7 states it, re-derived independently', async (t) => {
  const worker = generateX25519()
  const answer = wrapWorkerKey('w-1', deriveKey(MASTER, 'w-1'), importRawX25519(worker.publicKey)!)
  const serverPub = importRawX25519(answer.serverPublicKey)!
  const shared = diffieHellman({ privateKey: worker.privateKey, publicKey: serverPub })
  const aesKey = Buffer.from(hkdfSync('sha256', shared, Buffer.from(answer.nonce, 'base64url'), Buffer.from('portcullis-join:w-1'), 32))
  const wrapped = Buffer.from(answer.wrappedKey, 'base64url')
  const d = createDecipheriv('aes-256-gcm', aesKey, wrapped.subarray(0, 12))
  d.setAAD(Buffer.from('w-1'))
  d.setAuthTag(wrapped.subarray(wrapped.length - 16))
  t.equal(Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]).toString(), deriveKey(MASTER, 'w-1'))
})

t.test('unwrap refuses an altered answer or another keyid', async (t) => {
  const worker = generateX25519()
  const answer = wrapWorkerKey('w-2', deriveKey(MASTER, 'w-2'), importRawX25519(worker.publicKey)!)
  t.throws(() => unwrapWorkerKey({ ...answer, keyid: 'w-3' }, 'w-2', worker.privateKey), /another key id/)
  t.throws(() => unwrapWorkerKey(answer, 'w-3', worker.privateKey))
  const w = Buffer.from(answer.wrappedKey, 'base64url')
  w[20] ^= 1
  t.throws(() => unwrapWorkerKey({ ...answer, wrappedKey: w.toString('base64url') }, 'w-2', worker.privateKey))
  const n = Buffer.from(answer.nonce, 'base64url')
  n[0] ^= 1
  t.throws(() => unwrapWorkerKey({ ...answer, nonce: n.toString('base64url') }, 'w-2', worker.privateKey))
  t.throws(() => unwrapWorkerKey(answer, 'w-2', generateX25519().privateKey), 'another worker cannot unwrap it')
})

t.test('importRawX25519 takes exactly 32 canonical base64url bytes', async (t) => {
  const { publicKey } = generateX25519()
  t.ok(importRawX25519(publicKey))
  t.equal(rawPublicKey(importRawX25519(publicKey)!), publicKey)
  t.equal(importRawX25519(publicKey + '='), undefined, 'padding')
  t.equal(importRawX25519(publicKey.slice(1)), undefined, 'short')
  t.equal(importRawX25519(Buffer.alloc(33, 1).toString('base64url')), undefined, 'long')
  t.equal(importRawX25519(Buffer.alloc(32, 1).toString('base64')), undefined, 'base64 with padding')
  t.equal(importRawX25519('+' + publicKey.slice(1)), undefined, 'base64 alphabet')
  t.equal(importRawX25519(publicKey.slice(0, 42) + 'B'), undefined, 'non-canonical trailing bits')
})

t.test('a low-order public key is refused (all-zero shared secret)', async (t) => {
  const zero = importRawX25519(Buffer.alloc(32).toString('base64url'))
  t.ok(zero, 'it parses as a point')
  t.throws(() => wrapWorkerKey('w', deriveKey(MASTER, 'w'), zero!))
})

t.test('parseJoinBody', async (t) => {
  const pk = generateX25519().publicKey
  t.same(parseJoinBody(Buffer.from(JSON.stringify({ keyid: 'w-1', publicKey: pk }))), { keyid: 'w-1', publicKey: pk })
  t.same(parseJoinBody(Buffer.from('{"keyid":"w-1","extra":1}')), { keyid: 'w-1' }, 'unknown members ignored')
  for (const bad of ['', 'null', '[]', '"w"', '{}', '{"keyid":""}', '{"keyid":"a b"}', '{"keyid":7}', '{"keyid":"w","publicKey":7}', `{"keyid":"${'x'.repeat(257)}"}`]) {
    t.type(parseJoinBody(Buffer.from(bad)), 'string', `refused: ${bad.slice(0, 30)}`)
  }
})
