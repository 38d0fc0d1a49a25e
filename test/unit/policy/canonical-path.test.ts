// The path check of DESIGN §3.1: non-canonical targets are refused before any policy, and the
// accepted bytes are exactly the bytes matched and forwarded (nothing is decoded or rewritten).
import t from 'tap'
import { isCanonicalPath, splitCanonicalTarget } from '../../../src/policy/canonical-path.js'

const ACCEPTED = [
  '/',
  '/a',
  '/a/',
  '/a/b',
  '/pools/worker-1/jobs',
  '/pools/a%20b',
  '/pools/caf%C3%A9',
  '/a/.b',
  '/a/..b',
  '/a/b.',
  '/a/...',
  '/a/.well-known/x',
  "/a/b@c:d!$&'()*+,=~_-",
  '/v2/nodes/n1/heartbeat',
]

const REFUSED: [string, string][] = [
  ['', 'empty target'],
  ['a/b', 'relative target'],
  ['*', 'asterisk-form'],
  ['http://host/pools/x', 'absolute-form'],
  ['HTTP://host/pools/x', 'absolute-form, upper case'],
  ['//pools/x', 'leading //'],
  ['/pools//x', 'inner //'],
  ['/pools/x//', 'trailing //'],
  ['/.', 'single dot at the root'],
  ['/..', 'double dot at the root'],
  ['/pools/..', 'trailing ..'],
  ['/pools/.', 'trailing .'],
  ['/pools/../admin', '.. segment'],
  ['/a/./b', '. segment'],
  ['/%61dmin/secret', 'encoded unreserved letter (lower case hex)'],
  ['/%41dmin', 'encoded unreserved letter (upper case)'],
  ['/pools/%41', 'encoded A'],
  ['/a/%2e%2e%2e', 'encoded dots in a longer segment'],
  ['/a/b%2Dc', 'encoded -'],
  ['/a/b%5fc', 'encoded _'],
  ['/a/b%7Ec', 'encoded ~'],
  ['/a/%30', 'encoded digit'],
  ['/pools/%2e%2e/admin', 'encoded .. (lower case)'],
  ['/pools/%2E%2E/admin', 'encoded .. (upper case)'],
  ['/pools/.%2E/x', 'half-encoded ..'],
  ['/pools/%2e./x', 'half-encoded .. (other half)'],
  ['/pools/%2e/x', 'encoded .'],
  ['/pools/%2e', 'trailing encoded .'],
  ['/pools%2Fadmin', 'encoded / (upper case)'],
  ['/pools%2fadmin', 'encoded / (lower case)'],
  ['/pools%5Cadmin', 'encoded \\ (upper case)'],
  ['/pools%5cadmin', 'encoded \\ (lower case)'],
  ['/pools\\admin', 'raw \\'],
  ['/pools/x;jsessionid=abc', '; path parameter'],
  ['/pools;/x', '; in a segment'],
  ['/pools/x%00', 'encoded NUL'],
  ['/pools/x%0d%0aX-Evil:%201', 'encoded CR LF'],
  ['/pools/x%7f', 'encoded DEL'],
  ['/pools/x\u0000', 'raw NUL'],
  ['/pools/x\u0001', 'raw control byte'],
  ['/pools/x\ty', 'raw tab'],
  ['/pools/x y', 'raw space'],
  ['/pools/x\u007f', 'raw DEL'],
  ['/pools/caf\u00e9', 'raw non-ASCII'],
  ['/pools/x#frag', 'fragment'],
  ['/pools/x%zz', 'malformed escape'],
  ['/pools/x%2', 'truncated escape'],
  ['/pools/x%', 'lone %'],
]

t.test('canonical paths are accepted unchanged', async (t) => {
  for (const path of ACCEPTED) {
    t.equal(isCanonicalPath(path), true, path)
    t.same(splitCanonicalTarget(path), { ok: true, path, query: '' }, `${path}: nothing decoded or rewritten`)
  }
})

t.test('non-canonical targets are refused', async (t) => {
  for (const [target, why] of REFUSED) {
    t.same(splitCanonicalTarget(target), { ok: false }, `${JSON.stringify(target)}: ${why}`)
  }
})

t.test('the query string is split off and not path-checked', async (t) => {
  t.same(splitCanonicalTarget('/pools/x?a=%2F&b=..'), { ok: true, path: '/pools/x', query: '?a=%2F&b=..' })
  t.same(splitCanonicalTarget('/pools/x?next=/a/../b//c;d=%2e%2e'), { ok: true, path: '/pools/x', query: '?next=/a/../b//c;d=%2e%2e' })
  t.same(splitCanonicalTarget('/pools/x?'), { ok: true, path: '/pools/x', query: '?' })
  t.same(splitCanonicalTarget('/?a=1?b=2'), { ok: true, path: '/', query: '?a=1?b=2' })
  t.same(splitCanonicalTarget('/pools/../x?a=1'), { ok: false }, 'the path before the query is still checked')
  t.same(splitCanonicalTarget('/pools/%2Fx?a=1'), { ok: false })
})
