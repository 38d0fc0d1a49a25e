// Route concurrency (DESIGN §2, §3 step 5): requests of one identity or ip in flight on a route at once;
// a slot is taken on admission and given back exactly once when the exchange's response closes.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { InFlight, admitConcurrent, concurrencyKey, type Lifetime } from '../../../src/policy/concurrency.js'
import type { Identity } from '../../../src/auth/types.js'

const alice: Identity = { name: 'alice', roles: ['reader'], method: 'bearer', fp: 'token:aaaaaa' }
const bob: Identity = { name: 'bob', roles: ['reader'], method: 'bearer', fp: 'token:bbbbbb' }
const route = (max: number, by: 'identity' | 'ip' = 'identity') => ({ id: '/v2/tasks/:id/events', concurrency: { max, by } })

/** A response stand-in: 'close' once, `destroyed` afterwards. */
function lifetime(): Lifetime & { close(): void } {
  const e = new EventEmitter() as EventEmitter & { destroyed: boolean; close(): void }
  e.destroyed = false
  e.close = () => {
    e.destroyed = true
    e.emit('close')
  }
  return e
}

t.test('InFlight: at most max per key; release gives back once, however often called', async (t) => {
  const table = new InFlight()
  const r1 = table.acquire('k', 2)
  const r2 = table.acquire('k', 2)
  t.ok(r1 && r2)
  t.equal(table.acquire('k', 2), undefined, 'third refused')
  t.ok(table.acquire('other', 2), 'other keys are independent')
  r1!()
  r1!()
  r1!()
  t.equal(table.count('k'), 1, 'a repeated release counts once')
  t.ok(table.acquire('k', 2), 'one slot free again')
  t.equal(table.acquire('k', 2), undefined)
})

t.test('InFlight: a key with nothing in flight leaves no entry (bounded memory)', async (t) => {
  const table = new InFlight()
  for (let i = 0; i < 1000; i++) table.acquire(`k${i}`, 1)!()
  t.equal(table.keys, 0)
})

t.test('admitConcurrent: per identity, the slot held until the response closes', async (t) => {
  const table = new InFlight()
  const a1 = lifetime()
  const a2 = lifetime()
  t.same(admitConcurrent(route(2), alice, '10.0.0.1', a1, table), { ok: true })
  t.same(admitConcurrent(route(2), alice, '10.0.0.2', a2, table), { ok: true }, 'another address, same identity')
  const refused = admitConcurrent(route(2), alice, '10.0.0.1', lifetime(), table)
  t.same(refused, { ok: false, headers: { 'retry-after': '1', 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' } })
  t.same(admitConcurrent(route(2), bob, '10.0.0.1', lifetime(), table), { ok: true }, 'another identity is not affected')
  a1.close()
  t.same(admitConcurrent(route(2), alice, '10.0.0.1', lifetime(), table), { ok: true }, 'free again once a response closed')
})

t.test('admitConcurrent: by ip counts the client address (IPv6 by /64), whoever the identity', async (t) => {
  const table = new InFlight()
  t.ok(admitConcurrent(route(1, 'ip'), alice, '2001:db8:1:2::1', lifetime(), table).ok)
  t.notOk(admitConcurrent(route(1, 'ip'), bob, '2001:db8:1:2::99', lifetime(), table).ok, 'same /64')
  t.ok(admitConcurrent(route(1, 'ip'), alice, '2001:db8:1:3::1', lifetime(), table).ok, 'another /64')
})

t.test('admitConcurrent: by identity on a public route counts per client address', async (t) => {
  t.equal(concurrencyKey(route(1), 'identity', undefined, '10.0.0.1'), concurrencyKey(route(1), 'ip', undefined, '10.0.0.1'))
  t.not(concurrencyKey(route(1), 'identity', alice, '10.0.0.1'), concurrencyKey(route(1), 'ip', alice, '10.0.0.1'))
})

t.test('admitConcurrent: a response already gone gives its slot back at once', async (t) => {
  const table = new InFlight()
  const gone = lifetime()
  gone.close()
  t.ok(admitConcurrent(route(1), alice, '10.0.0.1', gone, table).ok)
  t.equal(table.count(concurrencyKey(route(1), 'identity', alice, '10.0.0.1')), 0)
})

t.test('admitConcurrent: a route without concurrency admits everything and holds nothing', async (t) => {
  const table = new InFlight()
  for (let i = 0; i < 10; i++) t.ok(admitConcurrent({ id: '/x', concurrency: null }, alice, '10.0.0.1', lifetime(), table).ok)
  t.equal(table.keys, 0)
})
