// Static credentials by digest (DESIGN §4.1, §4.2): one hash and one Map lookup, whatever the table size.
import t from 'tap'
import { CredentialTable } from '../../../src/auth/static-credentials.js'
import fc from 'fast-check'
import { digestKey, fullFingerprint, keyedFingerprint, sha256, tokenFingerprint } from '../../../src/auth/credential.js'

t.test('lookup by digest: secrets and stored sha256: digests, duplicates refused', async (t) => {
  const table = new CredentialTable()
  t.equal(table.add('secret-a'.repeat(5), { name: 'a', roles: [] }), true)
  t.equal(table.add(fullFingerprint('secret-b'.repeat(5)), { name: 'b', roles: [] }), true, 'a stored digest')
  t.equal(table.add('secret-b'.repeat(5), { name: 'c', roles: [] }), false, 'the same credential twice is refused')
  t.equal(table.size, 2)
  t.equal(table.findKey(digestKey('secret-a'.repeat(5)))?.name, 'a')
  t.equal(table.findKey(digestKey('secret-b'.repeat(5)))?.name, 'b')
  t.equal(table.findKey(digestKey('secret-c'.repeat(5))), undefined)
  t.equal(table.findKey(digestKey('')), undefined)
})

t.test('the cost of a lookup did not grow with the number of identities (a scan of every entry)', async (t) => {
  // Bound the work, not the time: with a scan, a lookup compared the digest with every entry.
  const table = new CredentialTable()
  for (let i = 0; i < 10_000; i++) table.add(`token-${i}-`.padEnd(40, 'x'), { name: `id-${i}`, roles: [] })
  const entries = Object.values(table as unknown as Record<string, unknown>).find((v) => v instanceof Map) as Map<string, unknown> | undefined
  t.ok(entries, 'held in a Map keyed by digest')
  let gets = 0
  if (entries) {
    const get = entries.get.bind(entries)
    entries.get = (k: string) => (gets++, get(k))
  }
  t.equal(table.findKey(digestKey('token-9999-'.padEnd(40, 'x')))?.name, 'id-9999')
  t.equal(gets, 1, 'one lookup')
})

t.test('digestKey is the SHA-256 as latin1 and keyedFingerprint its token: fingerprint (6 hex), for any credential', async (t) => {
  let checked = 0
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ maxLength: 80 })), (credential) => {
      const digest = sha256(credential)
      checked++
      return digestKey(credential) === digest.toString('latin1') && keyedFingerprint(digestKey(credential)) === 'token:' + digest.toString('hex', 0, 3) && tokenFingerprint(credential) === keyedFingerprint(digestKey(credential))
    }),
    { numRuns: 2000 },
  )
  t.equal(checked, 2000)
  t.equal(keyedFingerprint(digestKey('abc')), 'token:ba7816', 'SHA-256("abc") starts ba7816bf')
})
