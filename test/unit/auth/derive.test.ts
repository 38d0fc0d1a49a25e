// `derive` (DESIGN §4.4): HKDF-SHA256 values checked against an independent RFC 5869 computation (Python hmac).
import t from 'tap'
import { deriveKey } from '../../../src/auth/derive.js'

t.test('known values', async (t) => {
  t.equal(deriveKey('master-0123456789abcdef0123456789abcdef', 'worker-7'), '38c6d5364c08dfda26c6649e75927f905c991d17a28587459d017dbb1a75cc82')
  t.equal(deriveKey('mäster-0123456789abcdef0123456789abcdef', 'wörker'), '35624fb4476779b630ea2df8096f32e71624a1bd036a0efe668040f3ed467e8d', 'UTF-8 master and id')
})

t.test('shape and separation', async (t) => {
  const a = deriveKey('m'.repeat(32), 'a')
  t.match(a, /^[0-9a-f]{64}$/)
  t.not(a, deriveKey('m'.repeat(32), 'b'))
  t.not(a, deriveKey('n'.repeat(32), 'a'))
  t.throws(() => deriveKey('m'.repeat(32), 'x'.repeat(2000)), RangeError)
})
