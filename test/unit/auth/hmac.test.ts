// HMAC-SHA-256 of the verify paths (src/auth/hmac.ts): RFC 4231's test vectors, and equal to node's
// createHmac for every key length (empty, shorter than, equal to and longer than a block) and message.
import t from 'tap'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import { hmacKey, hmacSha256With } from '../../../src/auth/hmac.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)
const hex = (s: string) => Buffer.from(s, 'hex')

t.test('RFC 4231 test cases 1, 2, 3, 6 and 7', async (t) => {
  const cases: [Buffer, Buffer, string][] = [
    [Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    [Buffer.alloc(131, 0xaa), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [
      Buffer.alloc(131, 0xaa),
      Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
  ]
  for (const [key, data, mac] of cases) t.same(hmacSha256With(hmacKey(key), data.toString('latin1'), 'latin1'), hex(mac))
})

t.test('equal to createHmac for any key and message, latin1 and utf8', async (t) => {
  const key = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 100 }), fc.constantFrom(Buffer.alloc(64, 7), Buffer.alloc(65, 7), Buffer.alloc(63, 7)))
  const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 600 })
  fc.assert(
    fc.property(key, latin1, fc.string({ unit: 'grapheme', maxLength: 200 }), (k, a, u) => {
      const prepared = hmacKey(k)
      const raw = typeof k === 'string' ? Buffer.from(k, 'utf8') : k
      return (
        hmacSha256With(prepared, a, 'latin1').equals(createHmac('sha256', raw).update(a, 'latin1').digest()) &&
        hmacSha256With(prepared, u, 'utf8').equals(createHmac('sha256', raw).update(u, 'utf8').digest())
      )
    }),
    { numRuns: RUNS },
  )
})

t.test('a key is not changed by use, and one MAC does not disturb the next', async (t) => {
  const k = hmacKey('a shared secret of some length')
  const before = Buffer.concat([k.inner, k.outer])
  const first = hmacSha256With(k, 'one', 'latin1')
  hmacSha256With(k, 'x'.repeat(5000), 'latin1') // larger than the allocation pool's slices
  t.same(hmacSha256With(k, 'one', 'latin1'), first)
  t.same(Buffer.concat([k.inner, k.outer]), before)
  t.notSame(hmacSha256With(hmacKey('a shared secret of some lengtH'), 'one', 'latin1'), first, 'another key, another MAC')
})
