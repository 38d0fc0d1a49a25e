// The verifier beyond the golden vectors: both key types, strict canonical bytes, varsig/key agreement,
// P-256 malleability, time tolerance and window, trusted roots, audience, revocation, attenuation.
import t from 'tap'
import { decodeToken, signToken, DELEGATION_TAG, INVOCATION_TAG, tokenCid } from '../../../src/ucan/token.js'
import { encode } from '../../../src/ucan/cbor.js'
import { verifyContainerTokens, type VerifyOptions } from '../../../src/ucan/verify.js'
import { delegate, invoke } from '../../../src/ucan/issue.js'
import { parseDidKey, signRaw } from '../../../src/ucan/did-key.js'
import { chain, NOW, principal } from './helpers.js'

const opts = (root: string, extra: Partial<VerifyOptions> = {}): VerifyOptions => ({ now: NOW, subjects: new Set([root]), maxInvocationTtl: 300, ...extra })

t.test('an Ed25519 and a P-256 chain verify, and allow exactly the delegated commands', async (t) => {
  for (const kind of ['ed25519', 'p256'] as const) {
    const c = chain({ root: principal(kind), worker: principal(kind) })
    const v = verifyContainerTokens(c.tokens, opts(c.root.did))
    t.ok(v.ok, kind)
    if (!v.ok) continue
    t.equal(v.value.subject, c.root.did)
    t.same(v.value.allows('/pool/preload'), { ok: true })
    t.same(v.value.allows('/pool/other'), { ok: false, reason: 'CommandMismatch' }, 'the invocation names one command only')
  }
})

t.test('command attenuation: /pool covers /pool/x, not /poolx; / covers all', async (t) => {
  for (const [cmd, inv, ok] of [['/pool', '/pool/preload', true], ['/', '/pool/preload', true], ['/pool/preload', '/pool/preload', true], ['/pool', '/poolx', false], ['/pool/preload', '/pool', false]] as const) {
    const c = chain({ cmd, invokeCmd: inv })
    const v = verifyContainerTokens(c.tokens, opts(c.root.did))
    t.ok(v.ok)
    if (v.ok) t.equal(v.value.allows(inv).ok, ok, `${cmd} → ${inv}`)
  }
})

t.test('a delegation policy is checked against the invocation args (MatchError)', async (t) => {
  const c = chain({ pol: [['==', '.method', 'POST'], ['like', '.path', '/pools/*']], args: { method: 'POST', path: '/pools/7/preload' } })
  const v = verifyContainerTokens(c.tokens, opts(c.root.did))
  t.ok(v.ok && v.value.allows('/pool/preload').ok)
  const d = chain({ pol: [['==', '.method', 'GET']], args: { method: 'POST' } })
  const w = verifyContainerTokens(d.tokens, opts(d.root.did))
  t.same(w.ok && w.value.allows('/pool/preload'), { ok: false, reason: 'MatchError' })
})

t.test('a chain not rooted in a trusted subject is InvalidClaim; a self-issued invocation needs no proof', async (t) => {
  const c = chain()
  const v = verifyContainerTokens(c.tokens, opts(principal().did))
  t.match(v, { ok: false, error: 'InvalidClaim' })
  const root = principal()
  const self = invoke({ key: root.key, sub: root.did, cmd: '/pool/preload', args: {}, proofs: [], ttlS: 60, now: NOW })
  t.ok(verifyContainerTokens(self, opts(root.did)).ok)
})

t.test('a worker cannot invoke on a subject it holds no delegation for, even with a valid chain for another', async (t) => {
  const c = chain()
  const other = principal()
  const forged = invoke({ key: c.worker.key, sub: other.did, cmd: '/pool/preload', args: {}, proofs: [], chain: [c.dlg], ttlS: 60, now: NOW })
  t.match(verifyContainerTokens([...forged, c.dlg], opts(other.did)), { ok: false, error: 'InvalidSubject' })
})

t.test('time: 60 s tolerance on exp; the invocation must expire within the window', async (t) => {
  const c = chain({ ttlS: 60 })
  t.ok(verifyContainerTokens(c.tokens, opts(c.root.did, { now: NOW + 60 + 59 })).ok, 'within tolerance')
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did, { now: NOW + 60 + 61 })), { ok: false, error: 'Expired' })
  const long = chain({ ttlS: 3600 })
  t.match(verifyContainerTokens(long.tokens, opts(long.root.did)), { ok: false, error: 'TooLong' })
  const root = principal()
  const forever = signToken(INVOCATION_TAG, { iss: root.did, sub: root.did, cmd: '/a', args: {}, prf: [], nonce: new Uint8Array(4), exp: null }, root.key)
  t.match(verifyContainerTokens([forever], opts(root.did)), { ok: false, error: 'TooLong' }, 'exp: null is refused by the gateway')
  const early = delegate({ key: root.key, aud: c.worker.did, sub: root.did, cmd: '/', ttlS: 3600, now: NOW, nbf: NOW + 120 })
  const inv = invoke({ key: c.worker.key, sub: root.did, cmd: '/a', args: {}, proofs: [early], ttlS: 60, now: NOW })
  t.match(verifyContainerTokens(inv, opts(root.did)), { ok: false, error: 'TooEarly' })
})

t.test('aud: accepted only when it names the configured audience', async (t) => {
  const gw = principal()
  const c = chain({ aud: gw.did })
  t.ok(verifyContainerTokens(c.tokens, opts(c.root.did, { audience: gw.did })).ok)
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did, { audience: principal().did })), { ok: false, error: 'InvalidAudience' })
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did)), { ok: false, error: 'InvalidAudience' }, 'no audience configured: an aud is for someone else')
})

t.test('revoked delegation or invocation CIDs', async (t) => {
  const c = chain()
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did, { revoked: new Set([tokenCid(c.dlg).toString()]) })), { ok: false, error: 'Revoked' })
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did, { revoked: new Set([tokenCid(c.tokens[0]!).toString()]) })), { ok: false, error: 'Revoked' })
})

t.test('non-canonical encodings of a validly signed token are refused (CIDs hash bytes)', async (t) => {
  const c = chain()
  const inv = c.tokens[0]!
  t.equal(inv[0], 0x82)
  // The same envelope with its array length written in two bytes: same values, same signature, other CID.
  const longForm = Uint8Array.from([0x98, 0x02, ...inv.subarray(1)])
  t.match(verifyContainerTokens([longForm, c.dlg], opts(c.root.did)), { ok: false, error: 'Malformed' })
  // A float64 where an integer belongs (exp), signed as such.
  t.throws(() => decodeToken(Uint8Array.from([...inv, 0x00])), { name: 'Malformed' }, 'trailing bytes')
})

t.test('the varsig header must name the issuer key algorithm; only @1.0.0 tags', async (t) => {
  const ed = principal('ed25519')
  const p256 = principal('p256')
  const payload = { iss: ed.did, aud: p256.did, sub: ed.did, cmd: '/', pol: [], nonce: new Uint8Array(4), exp: null }
  const wrongH = { h: Uint8Array.from([0x34, 0x01, 0xec, 0x01, 0x80, 0x24, 0x12, 0x71]), [DELEGATION_TAG]: payload }
  const bytes = encode([signRaw(ed.key, encode(wrongH)), wrongH])
  t.throws(() => decodeToken(bytes), { name: 'Malformed' })
  const rc = { h: Uint8Array.from([0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71]), 'ucan/dlg@1.0.0-rc.1': payload }
  t.throws(() => decodeToken(encode([signRaw(ed.key, encode(rc)), rc])), { name: 'Malformed' })
  const unknownField = signToken(DELEGATION_TAG, { ...payload, extra: 1 }, ed.key)
  t.throws(() => decodeToken(unknownField), { name: 'Malformed' })
})

t.test('P-256: a high-S twin of a valid signature is refused (no replay under a new CID)', async (t) => {
  const root = principal('p256')
  const tokens = invoke({ key: root.key, sub: root.did, cmd: '/a', args: {}, proofs: [], ttlS: 60, now: NOW })
  t.ok(verifyContainerTokens(tokens, opts(root.did)).ok)
  const tok = decodeToken(tokens[0]!)
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
  const s = BigInt('0x' + Buffer.from(tok.signature.subarray(32)).toString('hex'))
  const high = Buffer.concat([Buffer.from(tok.signature.subarray(0, 32)), Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')])
  const { decodeStrict } = await import('../../../src/ucan/cbor.js')
  const env = decodeStrict(tokens[0]!) as [Uint8Array, unknown]
  const twin = encode([high, env[1]])
  t.match(verifyContainerTokens([twin], opts(root.did)), { ok: false, error: 'InvalidSignature' })
})

t.test('did:key parsing refuses other key types and malformed keys', async (t) => {
  t.ok(parseDidKey('did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'))
  t.equal(parseDidKey('did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'), undefined, 'secp256k1 is not supported')
  t.equal(parseDidKey('did:web:example.com'), undefined)
  t.equal(parseDidKey('did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do0'), undefined)
})

t.test('an unavailable proof, a proof that is an invocation, two invocations', async (t) => {
  const c = chain()
  t.match(verifyContainerTokens([c.tokens[0]!], opts(c.root.did)), { ok: false, error: 'UnavailableProof' })
  t.match(verifyContainerTokens([c.tokens[0]!, c.tokens[0]!], opts(c.root.did)), { ok: false, error: 'Malformed' })
  const unrelated = delegate({ key: principal().key, aud: c.worker.did, sub: null, cmd: '/', ttlS: null })
  t.ok(verifyContainerTokens([...c.tokens, unrelated], opts(c.root.did)).ok, 'tokens the invocation does not name are ignored')
})

t.test('regression: map keys out of canonical order (same values, same signature, new CID) are refused — else a replay under a new CID', async (t) => {
  const { encode: cborgEncode } = await import('cborg')
  const root = principal()
  const tokens = invoke({ key: root.key, sub: root.did, cmd: '/a', args: { a: 1, bb: 2 }, proofs: [], ttlS: 60, now: NOW })
  const { decodeStrict } = await import('../../../src/ucan/cbor.js')
  const env = decodeStrict(tokens[0]!)
  // Reverse DAG-CBOR's key order everywhere: a valid CBOR encoding of the very same data.
  const reordered = cborgEncode(env, { float64: true, mapSorter: (a: any, b: any) => (a[0].value.length - b[0].value.length) || (a[0].value < b[0].value ? 1 : -1) })
  t.not(Buffer.from(reordered).toString('hex'), Buffer.from(tokens[0]!).toString('hex'))
  t.match(verifyContainerTokens([reordered], opts(root.did)), { ok: false, error: 'Malformed' })
})

t.test('the verified-delegation cache skips only a signature check, keyed by the exact bytes (CID)', async (t) => {
  const c = chain()
  const seen = new Set<string>()
  const cache = { has: (x: string) => seen.has(x), add: (x: string) => void seen.add(x) }
  t.ok(verifyContainerTokens(c.tokens, opts(c.root.did, { verifiedDelegations: cache })).ok)
  t.equal(seen.size, 1, 'the delegation is remembered, the invocation is not')
  t.ok(verifyContainerTokens(c.tokens, opts(c.root.did, { verifiedDelegations: cache })).ok)
  // A forged twin of the delegation (signature flipped) is another CID: still checked, still refused.
  const forged = Uint8Array.from(c.dlg)
  forged[10]! ^= 1
  const inv = invoke({ key: c.worker.key, sub: c.root.did, cmd: '/pool/preload', args: {}, proofs: [], chain: [forged], ttlS: 60, now: NOW })
  t.match(verifyContainerTokens(inv, opts(c.root.did, { verifiedDelegations: cache })), { ok: false, error: 'InvalidSignature' })
  // Time is still checked on a cached delegation.
  t.match(verifyContainerTokens(c.tokens, opts(c.root.did, { verifiedDelegations: cache, now: NOW + 7200 })), { ok: false, error: 'Expired' })
})
