// An upstream's connection budget (DESIGN §2 `connections`): at most max in use, waiters served in
// arrival order, a withdrawn waiter never served, each slot given back once.
import t from 'tap'
import { ConnectionSlots } from '../../../src/proxy/forward.js'

t.test('at most max in use; the rest wait in order and get the slot a release frees', async (t) => {
  const slots = new ConnectionSlots(2)
  const got: string[] = []
  const releases = new Map<string, () => void>()
  for (const n of ['a', 'b', 'c', 'd']) slots.take((r) => (got.push(n), releases.set(n, r)))
  t.same(got, ['a', 'b'])
  t.equal(slots.inUse, 2)
  t.equal(slots.queued, 2)
  releases.get('a')!()
  releases.get('a')!()
  t.same(got, ['a', 'b', 'c'], 'a double release frees one slot only')
  t.equal(slots.inUse, 2)
  releases.get('b')!()
  releases.get('c')!()
  releases.get('d')!()
  t.equal(slots.inUse, 0)
  t.equal(slots.queued, 0)
})

t.test('a withdrawn waiter (timed out, client gone) is never served', async (t) => {
  const slots = new ConnectionSlots(1)
  let first: (() => void) | undefined
  slots.take((r) => (first = r))
  let served = false
  const withdraw = slots.take(() => (served = true))
  withdraw()
  first!()
  t.equal(served, false)
  t.equal(slots.inUse, 0)
})
