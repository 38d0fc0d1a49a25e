// A route's `{role, claims}` entries (DESIGN §4.9): equality, any-of lists, array-valued claims, own properties only.
import t from 'tap'
import { compileRoles, rolesAllow } from '../../../src/auth/claims.js'

const rule = compileRoles(['master', { role: 'worker', claims: { gpu: true, zone: ['eu-1', 'eu-2'] } }])!

t.test('the claim matrix', async (t) => {
  const cases: [string, string[], Record<string, unknown> | undefined, boolean][] = [
    ['a plain role', ['master'], undefined, true],
    ['role and every claim', ['worker'], { gpu: true, zone: 'eu-2' }, true],
    ['role, a claim missing', ['worker'], { gpu: true }, false],
    ['role, a claim of another type', ['worker'], { gpu: 'true', zone: 'eu-1' }, false],
    ['claims without the role', ['reader'], { gpu: true, zone: 'eu-1' }, false],
    ['array claim containing a value', ['worker'], { gpu: [false, true], zone: ['us-1', 'eu-1'] }, true],
    ['array claim containing none', ['worker'], { gpu: true, zone: ['us-1'] }, false],
    ['no claims at all', ['worker'], undefined, false],
  ]
  for (const [what, roles, claims, allowed] of cases) t.equal(rolesAllow(rule, { roles, ...(claims ? { claims } : {}) }), allowed, what)
})

t.test('an inherited property is never a claim', async (t) => {
  const r = compileRoles([{ role: 'worker', claims: { constructor: 'x', toString: 'y' } }])!
  t.equal(rolesAllow(r, { roles: ['worker'], claims: {} }), false)
})

t.test('no roles: no rule', async (t) => {
  t.equal(compileRoles(undefined), null)
  t.equal(compileRoles([]), null)
})
