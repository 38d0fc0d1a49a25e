// The join body (DESIGN §4.7): a keyid holding ":" would make `join:<keyid>` and `<scheme>:<keyid>` ambiguous.
import t from 'tap'
import { parseJoinBody } from '../../../src/auth/join.js'

t.test('a join keyid holding ":" was accepted', async (t) => {
  for (const keyid of ['a:b', ':', 'signed:ops', 'has space', '', 'é', 'x'.repeat(257)]) {
    t.type(parseJoinBody(Buffer.from(JSON.stringify({ keyid }))), 'string', JSON.stringify(keyid))
  }
  for (const keyid of ['worker-1', 'a.b_c~d!', 'x'.repeat(256)]) t.same(parseJoinBody(Buffer.from(JSON.stringify({ keyid }))), { keyid })
})
