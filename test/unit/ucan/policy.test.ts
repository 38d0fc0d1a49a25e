// The policy language beyond policy.json: the selector table of the delegation spec, optional and
// missing keys, bytes, slices, the iterator, `like` escapes, grammar refusals, inherited properties
// never read, and the step budget.
import t from 'tap'
import { evaluatePolicy, parsePolicy, parseSelector, select, parseGlob } from '../../../src/ucan/policy.js'

const args = {
  from: 'alice@example.com',
  to: ['bob@example.com', 'carol@not.example.com', 'dan@example.com'],
  cc: ['fraud@example.com'],
  title: 'Meeting Confirmation',
  body: "I'll see you on Tuesday",
}
const FAIL = select(parseSelector('.nope.deeper'), args)

t.test('the spec selector table', async (t) => {
  t.same(select(parseSelector('.'), args), args)
  t.equal(select(parseSelector('.title'), args), 'Meeting Confirmation')
  t.same(select(parseSelector('.cc'), args), ['fraud@example.com'])
  t.equal(select(parseSelector('.to[1]'), args), 'carol@not.example.com')
  t.equal(select(parseSelector('.to[-1]'), args), 'dan@example.com')
  t.equal(select(parseSelector('.to[99]?'), args), null)
  t.equal(select(parseSelector('.to[99]'), args), FAIL, 'fails to resolve')
  t.equal(select(parseSelector('.["title"]'), args), 'Meeting Confirmation')
  t.same(select(parseSelector('.to[1:]'), args), ['carol@not.example.com', 'dan@example.com'])
  t.same(select(parseSelector('.to[:-2]'), args), ['bob@example.com'])
  t.same(select(parseSelector('.to[]'), args), args.to)
  t.same(select(parseSelector('.[]'), { a: 1, b: 2 }), [1, 2], 'map values')
  t.equal(select(parseSelector('.[3]'), Uint8Array.from([0xd6, 0xa9, 0xc1, 0x8c, 0xf8, 0xc4])), 140, 'bytes are a byte array')
  t.equal(select(parseSelector('.title???'), args), 'Meeting Confirmation', 'repeated ? is one')
})

t.test('missing keys are null; going deeper without ? fails; resolution stops at the first failure', async (t) => {
  t.equal(select(parseSelector('.missing'), args), null)
  t.equal(select(parseSelector('.missing.deeper'), args), FAIL)
  t.equal(select(parseSelector('.missing.deeper?'), args), null)
  t.equal(select(parseSelector('.title[0].x?'), args), FAIL, 'a failing segment is not rescued by a later ?')
  t.equal(evaluatePolicy(parsePolicy([['==', '.missing.deeper', null]]), args), false)
  t.equal(evaluatePolicy(parsePolicy([['!=', '.missing.deeper', 1]]), args), false, 'an unresolved selector makes its statement false')
})

t.test('inherited properties are never selected', async (t) => {
  t.equal(select(parseSelector('.constructor'), {}), null)
  t.equal(select(parseSelector('.["__proto__"]'), {}), null)
  t.equal(evaluatePolicy(parsePolicy([['!=', '.toString', null]]), {}), false)
})

t.test('comparisons: numbers only, int and float alike; like: only strings', async (t) => {
  t.equal(evaluatePolicy(parsePolicy([['<', '.a', 2]]), { a: '1' }), false)
  t.equal(evaluatePolicy(parsePolicy([['>=', '.a', 1.5]]), { a: 2 }), true)
  t.equal(evaluatePolicy(parsePolicy([['like', '.a', '*']]), { a: 1 }), false)
  t.equal(evaluatePolicy(parsePolicy([['like', '.a', '*']]), { a: '' }), true)
  t.equal(evaluatePolicy(parsePolicy([['like', '.a', 'a*b*c']]), { a: 'abc' }), true)
  t.equal(evaluatePolicy(parsePolicy([['like', '.a', 'a*b*c']]), { a: 'acb' }), false)
  t.equal(evaluatePolicy(parsePolicy([['like', '.a', '\\\\*']]), { a: '\\xyz' }), true, '\\\\ is a literal backslash, then a wildcard')
  t.same(parseGlob('a\\*b*'), ['a*b', ''])
  t.equal(evaluatePolicy(parsePolicy([['==', '.a', { x: [1, 2] }]]), { a: { x: [1, 2.0] } }), true, 'deep equality')
  t.equal(evaluatePolicy(parsePolicy([['==', '.a', { x: [1] }]]), { a: { x: [1], y: 1 } }), false)
})

t.test('quantifiers over non-collections are false; all over empty is true, any over empty false', async (t) => {
  t.equal(evaluatePolicy(parsePolicy([['all', '.a', ['==', '.', 1]]]), { a: 'x' }), false)
  t.equal(evaluatePolicy(parsePolicy([['all', '.a', ['==', '.', 1]]]), { a: [] }), true)
  t.equal(evaluatePolicy(parsePolicy([['any', '.a', ['==', '.', 1]]]), { a: [] }), false)
  t.equal(evaluatePolicy(parsePolicy([['any', '.a', ['==', '.', 1]]]), { a: { k: 1 } }), true, 'map values')
})

t.test('grammar refusals', async (t) => {
  for (const bad of ['', 'a', '..', '.a..b', '.a.', '.[', '.["x"', '.[1.5]', '.[a]', '.?', '.a b', '.[01]']) t.throws(() => parseSelector(bad), { name: 'PolicyError' }, JSON.stringify(bad))
  for (const bad of [[['=', '.a', 1]], [['==', '.a']], [['<', '.a', '1']], [['and', ['==', '.a', 1]]], [['not']], 'x', [['like', '.a', 1]], [['all', '.a']]]) t.throws(() => parsePolicy(bad), { name: 'PolicyError' }, JSON.stringify(bad))
})

t.test('the step budget bounds evaluation (false, never a hang)', async (t) => {
  const big = { a: Array.from({ length: 2000 }, () => Array.from({ length: 100 }, (_, i) => i)) }
  t.equal(evaluatePolicy(parsePolicy([['all', '.a', ['all', '.', ['>=', '.', 0]]]]), big), false, '200 000 comparisons exceed the budget')
  t.equal(evaluatePolicy(parsePolicy([['all', '.a', ['all', '.', ['>=', '.', 0]]]]), { a: big.a.slice(0, 10) }), true)
})
