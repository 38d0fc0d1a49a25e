// Property tests of the path check (DESIGN §3 step 1): whatever the target, splitCanonicalTarget
// never throws, never rewrites, and accepts nothing a backend could read as another path.
import t from 'tap'
import fc from 'fast-check'
import { isCanonicalPath, splitCanonicalTarget } from '../../../src/policy/canonical-path.js'
import { holds, latin1String, params } from './settings.js'

const UNRESERVED = /^[A-Za-z0-9._~-]$/

/** Why `path` (as accepted) is not canonical per DESIGN §3 step 1, or undefined when it is. */
function nonCanonical(path: string): string | undefined {
  if (!path.startsWith('/')) return 'does not start with /'
  if (/[^\x21-\x7e]/.test(path)) return 'holds a control byte, space, DEL or non-ASCII'
  if (path.includes('//')) return 'holds //'
  if (path.includes(';')) return 'holds ;'
  if (path.includes('\\')) return 'holds a raw \\'
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hex = path.slice(i + 1, i + 3)
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return `malformed escape at ${i}`
    const byte = parseInt(hex, 16)
    if (byte === 0x2f || byte === 0x5c) return `encoded separator %${hex}`
    if (byte < 0x20 || byte === 0x7f) return `encoded control byte %${hex}`
    if (UNRESERVED.test(String.fromCharCode(byte))) return `percent-encoded unreserved character %${hex}`
  }
  for (const segment of path.split('/')) {
    const decoded = segment.replace(/%2e/gi, '.')
    if (decoded === '.' || decoded === '..') return `dot segment ${segment}`
  }
  return undefined
}

/** Pieces attackers put in paths, so random targets hit the interesting cases often. */
const piece = fc.constantFrom(
  'a', 'admin', 'secret', 'pools', '1', '.', '..', '...', '.a', '%2e', '%2E', '%2e%2e', '%2E%2e', '.%2e', '%2e.',
  '%2f', '%2F', '%5c', '%5C', '\\', ';', ';x=1', '%3b', '%3B', '%61', '%41', '%61dmin', '%7e', '%7E', '%2d', '%2D', '%5f',
  '%30', '%39', '%00', '%0a', '%0D', '%1f', '%7f', '%7F', '%20', '%25', '%252e', '%zz', '%', '%a', '%g0', '', '/', '//',
  '?', '?x=1', '#', '#f', '\t', ' ', '\0', '\x7f', '\u00e9', '\u00a0', '~', '-', '_', '@', ':', '*', '+', '"', '<', '{',
)
const attackTarget = fc.array(fc.tuple(piece, fc.constantFrom('/', '', '/')), { maxLength: 8 }).map((parts) => '/' + parts.map(([p, sep]) => p + sep).join(''))
const slashed = fc.array(piece, { maxLength: 8 }).map((parts) => '/' + parts.join('/'))

/** Paths DESIGN calls canonical: unreserved, sub-delims, ':' '@', and escapes of anything else allowed. */
const segmentChar = fc.oneof(
  fc.constantFrom(...'abcxyzABCXYZ0189-._~!$&\'()*+,=:@'.split('')),
  fc.constantFrom('%20', '%22', '%23', '%25', '%3C', '%3E', '%3F', '%5B', '%5D', '%7B', '%7D', '%C3%A9', '%FF', '%e2%82%ac'),
)
const canonicalSegment = fc.string({ unit: segmentChar, minLength: 1, maxLength: 12 }).filter((s) => s !== '.' && s !== '..')
const canonicalPath = fc.tuple(fc.array(canonicalSegment, { maxLength: 6 }), fc.boolean()).map(([segs, trailing]) => '/' + segs.join('/') + (trailing && segs.length ? '/' : ''))

t.test('random targets: never a throw; an accepted target is split, never rewritten', async (t) => {
  await holds(
    t,
    'no throw, no rewrite',
    fc.property(fc.oneof(latin1String(80), fc.string({ unit: 'binary', maxLength: 40 }), attackTarget, slashed), (target) => {
      const r = splitCanonicalTarget(target)
      if (r.ok) return r.path + r.query === target && !r.path.includes('?')
      return true
    }),
    params(3000),
  )
})

t.test('an accepted path holds no dot segment, no %2F/%5C, no encoded unreserved, no //, no ;, no control byte', async (t) => {
  await holds(
    t,
    'every accepted path is canonical',
    fc.property(fc.oneof(slashed, attackTarget, latin1String(40).map((s) => '/' + s)), (target) => {
      const r = splitCanonicalTarget(target)
      if (!r.ok) return true
      const why = nonCanonical(r.path)
      if (why !== undefined) throw new Error(`accepted ${JSON.stringify(r.path)}: ${why}`)
      return true
    }),
    params(3000),
  )
})

t.test('every canonical path is accepted, with any query (the check refuses only what it must)', async (t) => {
  await holds(
    t,
    'canonical paths pass',
    fc.property(canonicalPath, fc.option(fc.string({ unit: fc.constantFrom(...'ab=&%2F/?.:@'.split('')), maxLength: 20 }), { nil: undefined }), (path, query) => {
      const target = query === undefined ? path : `${path}?${query}`
      const r = splitCanonicalTarget(target)
      return r.ok && r.path === path && isCanonicalPath(path)
    }),
    params(2000),
  )
})

t.test('percent-encoded unreserved characters are refused (/%61dmin must not slip past /admin/*)', async (t) => {
  for (const target of ['/%61dmin/secret', '/%41dmin', '/admin%2Dx', '/a%5fb', '/%7Euser', '/%7e', '/x/%30', '/%2e%2E/admin', '/%2E']) {
    t.equal(splitCanonicalTarget(target).ok, false, `${target} refused`)
  }
  for (const target of ['/admin/secret', '/a%20b', '/%C3%A9t%C3%A9', '/a%25b', '/a%3Fb?x=%61']) {
    t.equal(splitCanonicalTarget(target).ok, true, `${target} accepted`)
  }
})
