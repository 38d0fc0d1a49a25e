// DESIGN §3.3: no two methods produce the same identity name.
import t from 'tap'
import { identityNameProblem, schemeIdentity, schemeNameProblem } from '../../../src/auth/identity-names.js'

t.test('identities: no ":" and not localhost / anonymous; schemes: no ":" and not join', async (t) => {
  for (const bad of ['a:b', ':', 'localhost', 'anonymous']) t.type(identityNameProblem(bad), 'string', bad)
  for (const ok of ['ops', 'Localhost', 'anonymous-bot', 'join']) t.equal(identityNameProblem(ok), undefined, ok)
  for (const bad of ['join', 'a:b']) t.type(schemeNameProblem(bad), 'string', bad)
  t.equal(schemeNameProblem('signed'), undefined)
  t.equal(schemeIdentity('signed', 'ops'), 'signed:ops')
})
