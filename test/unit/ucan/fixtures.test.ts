// The UCAN 1.0 golden vectors (../shared/reference/ucan/fixtures): every case of delegation.json,
// invocation.json and policy.json, valid ones accepted, invalid ones refused with the named error,
// and that error mapped to the DESIGN code the gateway answers.
import t from 'tap'
import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { decodeToken, verifyTokenSignature, type Invocation } from '../../../src/ucan/token.js'
import { verifyInvocationBytes } from '../../../src/ucan/verify.js'
import { didOf } from '../../../src/ucan/did-key.js'
import { evaluatePolicy, parsePolicy } from '../../../src/ucan/policy.js'
import { ucanErrorCode } from '../../../src/auth/ucan.js'

// Copied from ../shared/reference/ucan (see test/fixtures/ucan/SOURCES.md): the suite needs nothing outside the repo.
const SHARED = new URL('../../../../test/fixtures/ucan/fixtures/', import.meta.url)
const read = (name: string) => readFileSync(new URL(name, SHARED), 'utf8')
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

t.test('delegation.json: every valid delegation decodes, verifies, and has the stated CID and payload', async (t) => {
  const doc = JSON.parse(read('delegation.json'))
  let n = 0
  for (const c of doc.valid) {
    const tok = decodeToken(b64(c.token))
    t.equal(tok.cidText, c.cid, `${c.name}: CID`)
    t.ok(verifyTokenSignature(tok), `${c.name}: signature`)
    t.equal(tok.algorithm, c.envelope.alg, `${c.name}: alg`)
    t.equal(c.envelope.spec, 'dlg')
    const p = c.envelope.payload
    t.match(tok.payload, { kind: 'dlg', iss: p.iss, aud: p.aud, sub: p.sub, cmd: p.cmd, exp: p.exp })
    t.same(Buffer.from(tok.signature).toString('base64'), c.envelope.signature)
    n++
  }
  // The principals' private keys give the DIDs the tokens name (varint 0x1300 + Ed25519 seed).
  const dids = Object.values(doc.principals as Record<string, string>).map((k) => {
    const seed = Buffer.from(k, 'base64').subarray(2)
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' })
    return didOf(key).did
  })
  t.ok(dids.includes(doc.valid[0].envelope.payload.iss), 'a principal key is the issuer')
  t.ok(dids.includes(doc.valid[0].envelope.payload.aud), 'a principal key is the audience')
  t.comment(`delegation.json: ${n} of ${doc.valid.length} valid`)
  t.equal(n, doc.valid.length)
})

t.test('invocation.json: valid cases pass, invalid ones fail with the named error', async (t) => {
  const doc = JSON.parse(read('invocation.json'))
  let passed = 0
  const all = [...doc.valid.map((c: any) => ({ ...c, ok: true })), ...doc.invalid.map((c: any) => ({ ...c, ok: false }))]
  for (const c of all) {
    const inv = b64(c.invocation['/'].bytes)
    const proofs = c.proofs.map((p: any) => b64(p['/'].bytes))
    // The gateway trusts exactly the subject the invocation names: what a scheme's `subjects` would hold.
    const sub = (decodeToken(inv).payload as Invocation).sub
    const v = verifyInvocationBytes(inv, proofs, { now: c.time, subjects: new Set([sub]) })
    let error: string | undefined
    if (!v.ok) error = v.error
    else {
      const a = v.value.allows(v.value.invocation.payload.cmd)
      if (!a.ok) error = a.reason
    }
    if (c.ok) {
      t.equal(error, undefined, `valid: ${c.name}`)
      if (error === undefined) passed++
    } else {
      t.equal(error, c.error.name, `invalid: ${c.name} → ${c.error.name}`)
      if (error === c.error.name) passed++
    }
  }
  t.comment(`invocation.json: ${passed} of ${all.length}`)
  t.equal(passed, all.length)
})

t.test('invocation.json errors map to the DESIGN codes', async (t) => {
  t.equal(ucanErrorCode('Expired'), 'TOKEN_EXPIRED')
  t.equal(ucanErrorCode('TooEarly'), 'TOKEN_EXPIRED')
  t.equal(ucanErrorCode('TooLong'), 'TOKEN_EXPIRED')
  t.equal(ucanErrorCode('MatchError'), 'FORBIDDEN')
  t.equal(ucanErrorCode('CommandMismatch'), 'FORBIDDEN')
  t.equal(ucanErrorCode('Revoked'), 'KEY_REVOKED')
  for (const n of ['InvalidClaim', 'UnavailableProof', 'InvalidAudience', 'InvalidSubject', 'InvalidSignature', 'Malformed'] as const) t.equal(ucanErrorCode(n), 'INVALID_CREDENTIALS', n)
})

t.test('policy.json: valid policies hold, invalid ones do not', async (t) => {
  // Upstream's policy.json is not valid JSON in one place (`"newsletters": { { "christmas": … } }`);
  // the case's evident meaning is a map of newsletters, so that one brace pair is removed.
  const text = read('policy.json').replace(/("newsletters":\s*\{)\s*\{([\s\S]*?\})\s*\}(\s*\})/, '$1$2$3')
  const doc = JSON.parse(text)
  let total = 0
  let passed = 0
  for (const [kind, want] of [['valid', true], ['invalid', false]] as const) {
    for (const c of doc[kind]) {
      for (const pol of c.policies) {
        total++
        const got = evaluatePolicy(parsePolicy(pol), c.args)
        t.equal(got, want, `${kind}: ${JSON.stringify(pol)}`)
        if (got === want) passed++
      }
    }
  }
  t.comment(`policy.json: ${passed} of ${total}`)
  t.equal(passed, total)
})
