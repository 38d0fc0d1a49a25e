// Static credentials by digest (DESIGN §4.1, §4.2): one hash and one Map lookup, whatever the table size.
import t from 'tap'
import { CredentialTable } from '../../../src/auth/static-credentials.js'
import { fullFingerprint, sha256 } from '../../../src/auth/credential.js'

t.test('lookup by digest: secrets and stored sha256: digests, duplicates refused', async (t) => {
  const table = new CredentialTable()
  t.equal(table.add('secret-a'.repeat(5), { name: 'a', roles: [] }), true)
  t.equal(table.add(fullFingerprint('secret-b'.repeat(5)), { name: 'b', roles: [] }), true, 'a stored digest')
  t.equal(table.add('secret-b'.repeat(5), { name: 'c', roles: [] }), false, 'the same credential twice is refused')
  t.equal(table.size, 2)
  t.equal(table.findDigest(sha256('secret-a'.repeat(5)))?.name, 'a')
  t.equal(table.findDigest(sha256('secret-b'.repeat(5)))?.name, 'b')
  t.equal(table.findDigest(sha256('secret-c'.repeat(5))), undefined)
  t.equal(table.findDigest(sha256('')), undefined)
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
  t.equal(table.findDigest(sha256('token-9999-'.padEnd(40, 'x')))?.name, 'id-9999')
  t.equal(gets, 1, 'one lookup')
})
