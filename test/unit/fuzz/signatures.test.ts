// Property tests of everything a signed request is parsed by: RFC 8941 fields (Signature-Input,
// Signature), the RFC 9421 signature base, the rfc9421 authenticator and RFC 9530 Content-Digest.
// Random and mutated inputs never throw, and nothing verifies unless it is the signed request itself.
import t from 'tap'
import fc from 'fast-check'
import { createHash, createHmac } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { parseDictionary, serializeDictionary, serializeInnerList, isInnerList, type InnerList } from 'structured-headers'
import { createRfc9421Authenticator } from '../../../src/auth/rfc9421.js'
import { buildSignatureBase, parseSignatureFields, plainInnerList, type SignedMessage } from '../../../src/auth/signature-base.js'
import { computeContentDigest, verifyContentDigest } from '../../../src/auth/content-digest.js'
import { signRfc9421 } from '../../../src/client/rfc9421.js'
import type { AuthOutcome, AuthRequest } from '../../../src/auth/types.js'
import { deliverable, holds, latin1Char, latin1String, mutation, params, trickyChar } from './settings.js'

const NOW = 1_700_000_000_000
const CREATED = NOW / 1000
const KEY7 = 'k7-0123456789abcdef0123456789abcdef'
const MASTER = 'master-0123456789abcdef0123456789abcdef'
const HOST = 'gw.example:8080'

const auth = createRfc9421Authenticator({
  name: 'signed',
  windowMs: 60_000,
  roles: ['worker'],
  keys: new Map([['worker-7', KEY7]]),
  deriveMaster: MASTER,
  revoked: ['worker-3'],
})

interface Fake {
  method: string
  target: string
  headers: Array<[string, string]>
  body?: Buffer
}

function request({ method, target, headers, body }: Fake): AuthRequest {
  const lower: Record<string, string> = {}
  for (const [k, v] of headers) {
    const l = k.toLowerCase()
    lower[l] = lower[l] === undefined ? v : `${lower[l]}, ${v}`
  }
  const raw = { headers: lower, rawHeaders: headers.flat() } as unknown as IncomingMessage
  const at = target.indexOf('?')
  return { raw, method, path: at === -1 ? target : target.slice(0, at), query: at === -1 ? '' : target.slice(at), target, body, tls: false, now: NOW }
}

const CODES = new Set(['INVALID_SIGNATURE', 'TIMESTAMP_SKEW', 'KEY_REVOKED', 'DIGEST_MISMATCH'])
async function outcome(req: AuthRequest): Promise<AuthOutcome> {
  const o = await auth.authenticate(req)
  if (o.kind === 'deny' && !CODES.has(o.code)) throw new Error(`unexpected refusal code ${o.code}`)
  return o
}

/** A request the client library signed, as it reaches the gateway. */
function signed(o: { method?: string; target?: string; body?: string; keyId?: string; secret?: string } = {}): Fake {
  const method = o.method ?? 'POST'
  const target = o.target ?? '/pools/1?x=1'
  const body = o.body ?? '{"job":42}'
  const h = signRfc9421({ keyId: o.keyId ?? 'worker-7', secret: o.secret ?? KEY7, method, url: `http://${HOST}${target}`, body, created: CREATED, nonce: 'n-0123456789' })
  const headers: Array<[string, string]> = [['Host', HOST], ['Content-Length', String(Buffer.byteLength(body))], ...(Object.entries(h) as Array<[string, string]>)]
  return { method, target, headers, body: Buffer.from(body) }
}

const header = (f: Fake, name: string) => f.headers.find(([k]) => k.toLowerCase() === name)?.[1] ?? ''
const withHeader = (f: Fake, name: string, value: string): Fake => ({ ...f, headers: f.headers.map(([k, v]) => [k, k.toLowerCase() === name ? value : v]) })
const stripOws = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '')

/** Pieces of RFC 8941 syntax (and near misses), so random fields are often almost valid. */
const sfPiece = fc.constantFrom(
  'sig1', 'sig2', '=', '(', ')', ' ', '  ', '\t', ',', ';', '"@method"', '"@authority"', '"@path"', '"@query"', '"content-digest"',
  '"@query-param";name="x"', '"x";key="a"', '"x";sf', '"x";bs', 'keyid="worker-7"', 'keyid="join"', 'keyid=""', 'keyid=1',
  'created=1700000000', 'created=-1', 'created=1.5', 'created=99999999999999999', 'expires=1', 'nonce="n"', 'alg="hmac-sha256"', 'alg="rsa"',
  ':AAAA:', ':', '::', ':%%:', '?1', '?0', '*', '"', '\\"', '%"a"', '@', 'a', '1', '-', '.', '\u00e9', '\u0000', '\r\n',
)
const sfText = fc.array(sfPiece, { maxLength: 16 }).map((p) => p.join(''))
const anyField = fc.oneof(sfText, latin1String(60), fc.string({ unit: 'binary', maxLength: 30 }))

t.test('RFC 8941: random Signature-Input / Signature fields never throw the parser out', async (t) => {
  await holds(
    t,
    'parseSignatureFields',
    fc.property(anyField, anyField, (input, signature) => {
      const entries = parseSignatureFields(input, signature)
      return entries === undefined || entries.every((e) => Array.isArray(e.covered[0]) && (e.signature === undefined || Buffer.isBuffer(e.signature)))
    }),
    params(2000),
  )
})

t.test('RFC 8941: serializing a parsed Dictionary is a fixed point (what @signature-params relies on)', async (t) => {
  await holds(
    t,
    'parse ∘ serialize ∘ parse = parse',
    fc.property(sfText, (text) => {
      let once: string
      try {
        once = serializeDictionary(parseDictionary(text))
      } catch {
        return true // not a Dictionary, or not serializable (both refused upstream)
      }
      return serializeDictionary(parseDictionary(once)) === once
    }),
    params(2000),
  )
})

t.test('signature base: never throws; when built, one line per covered component plus @signature-params, ASCII only', async (t) => {
  const fieldValue = fc.oneof(latin1String(30), sfText, fc.constantFrom('a\nb', 'a\r\n b', 'x\r"@method": GET', '\u0100'))
  await holds(
    t,
    'buildSignatureBase',
    fc.property(sfText, fc.dictionary(fc.constantFrom('x', 'content-digest', 'a', 'signature'), fc.array(fieldValue, { minLength: 1, maxLength: 2 })), latin1String(20), latin1String(20), (input, fields, path, query) => {
      let dict
      try {
        dict = parseDictionary(input)
      } catch {
        return true
      }
      for (const member of dict.values()) {
        if (!isInnerList(member)) continue
        const message: SignedMessage = { method: 'POST', scheme: 'http', authority: HOST, path: '/' + path, query: query ? '?' + query : '', field: (n) => fields[n] }
        const r = buildSignatureBase(message, member as InnerList)
        if (!r.ok) continue
        const lines = r.base.split('\n')
        if (lines.length !== (member as InnerList)[0].length + 1) throw new Error(`line injection: ${JSON.stringify(r.base)}`)
        if (!lines.at(-1)!.startsWith('"@signature-params": ')) throw new Error('last line is not @signature-params')
        if (/[^\x00-\x7f]/.test(r.base)) throw new Error('non-ASCII base')
      }
      return true
    }),
    params(2000),
  )
})

t.test('rfc9421: random signature fields never throw and never authenticate (even with derive, which knows every keyid)', async (t) => {
  const base = signed()
  await holds(
    t,
    'random fields refused',
    fc.asyncProperty(anyField.map(deliverable), anyField.map(deliverable), async (input, sig) => {
      const f = withHeader(withHeader(base, 'signature-input', input), 'signature', sig)
      const o = await outcome(request(f))
      if (o.kind === 'identity') throw new Error(`authenticated ${input} / ${sig}`)
    }),
    params(1500),
  )
})

t.test('rfc9421: a mutated signed request authenticates only when it is, component for component, the signed one', async (t) => {
  const orig = signed()
  const origEntry = parseSignatureFields(header(orig, 'signature-input'), header(orig, 'signature'))![0]!
  const origCovered = serializeInnerList(origEntry.covered)
  const sfAlphabet = fc.oneof(trickyChar, fc.constantFrom(...'"();=:,@-_0123456789abcdefABCDEF+/'.split('')))
  const part = fc.constantFrom('signature-input', 'signature', 'method', 'path', 'query', 'host', 'body', 'content-digest', 'content-length')
  const mutated = part.chain((which): fc.Arbitrary<{ which: string; f: Fake }> => {
    switch (which) {
      case 'method':
        return mutation(orig.method).map((m) => ({ which, f: { ...orig, method: m } }))
      case 'path':
        return mutation('/pools/1').map((p) => ({ which, f: { ...orig, target: p + '?x=1' } }))
      case 'query':
        return mutation('?x=1').map((q) => ({ which, f: { ...orig, target: '/pools/1' + (q.startsWith('?') || q === '' ? q : '?' + q) } }))
      case 'body':
        return mutation(orig.body!.toString()).map((b) => ({ which, f: { ...orig, body: Buffer.from(b, 'latin1') } }))
      default: {
        const name = which === 'host' ? 'host' : which
        return mutation(header(orig, name), sfAlphabet).map((v) => ({ which, f: withHeader(orig, name, deliverable(v)) }))
      }
    }
  })
  await holds(
    t,
    'only the signed request verifies',
    fc.asyncProperty(mutated, async ({ which, f }) => {
      const o = await outcome(request(f))
      if (o.kind !== 'identity') return
      const same = (() => {
        switch (which) {
          case 'signature-input':
          case 'signature': {
            const entries = parseSignatureFields(header(f, 'signature-input'), header(f, 'signature')) ?? []
            return entries.some((e) => serializeInnerList(e.covered) === origCovered && e.signature?.equals(origEntry.signature!))
          }
          case 'method':
            return f.method === orig.method
          case 'path':
          case 'query': {
            const q = (s: string) => (s.includes('?') ? s.slice(s.indexOf('?')) : '') || '?'
            return f.target.split('?')[0] === orig.target.split('?')[0] && q(f.target) === q(orig.target)
          }
          case 'host':
            return header(f, 'host').toLowerCase() === HOST
          case 'body':
            return f.body!.equals(orig.body!)
          case 'content-length':
            return true // not a covered component; the HTTP parser frames the body by it
          default:
            return stripOws(header(f, which)) === header(orig, which)
        }
      })()
      if (!same) throw new Error(`a mutated ${which} authenticated: ${JSON.stringify(f)}`)
    }),
    params(1500),
  )
})

t.test('rfc9421: a signature covering more than 32 components is refused before any is processed (DESIGN §4.4)', async (t) => {
  const extra = Array.from({ length: 29 }, (_, i) => `x-h${i}`)
  const headers = extra.map((h) => [h, 'v'] as [string, string])
  const target = '/pools/1?x=1'
  // By hand: the client library itself refuses to sign more than 32 components. The MAC is correct.
  const covered = ['"@method"', '"@authority"', '"@path"', '"@query"', ...extra.map((x) => `"${x}"`)]
  const sigParams = `(${covered.join(' ')});created=${CREATED};keyid="worker-7";nonce="n-33"`
  const base = ['"@method": GET', `"@authority": ${HOST}`, '"@path": /pools/1', '"@query": ?x=1', ...extra.map((x) => `"${x}": v`), `"@signature-params": ${sigParams}`].join('\n')
  const mac = createHmac('sha256', KEY7).update(base).digest('base64')
  const h = { 'signature-input': `sig1=${sigParams}`, signature: `sig1=:${mac}:` }
  const f: Fake = { method: 'GET', target, headers: [['Host', HOST], ...headers, ...(Object.entries(h) as Array<[string, string]>)] }
  t.equal(parseSignatureFields(h['signature-input'], h.signature)![0]!.covered[0].length, 33, 'the signature covers 33 components')
  const o = await outcome(request(f))
  t.match(o, { kind: 'deny', code: 'INVALID_SIGNATURE' }, '33 components → 401 INVALID_SIGNATURE, even with a correct MAC')
})

t.test('rfc9421: the identity is <scheme>:<keyid> (DESIGN §3.3)', async (t) => {
  const o = await outcome(request(signed()))
  t.equal(o.kind === 'identity' && o.identity.name, 'signed:worker-7')
})

// ---------------------------------------------------------------- content-digest
const sha = (alg: string, body: Uint8Array) => createHash(alg === 'sha-256' ? 'sha256' : 'sha512').update(body).digest()

/** RFC 9530, independently: `ok` iff a non-empty Dictionary of sha-256/sha-512 Byte Sequences, each the body's digest. */
function digestOracle(value: string, body: Uint8Array): boolean {
  let dict
  try {
    dict = parseDictionary(value)
  } catch {
    return false
  }
  if (dict.size === 0) return false
  for (const [alg, member] of dict) {
    if (isInnerList(member) || !(member[0] instanceof ArrayBuffer) || (alg !== 'sha-256' && alg !== 'sha-512')) return false
    if (!Buffer.from(member[0]).equals(sha(alg, body))) return false
  }
  return true
}

t.test('Content-Digest: random and mutated values never throw and are ok exactly when every digest is the body\'s', async (t) => {
  const body = fc.uint8Array({ maxLength: 64 })
  const value = (b: Uint8Array) =>
    fc.oneof(
      anyField,
      mutation(computeContentDigest(b), fc.oneof(trickyChar, fc.constantFrom(...'=:,;AQgw+/5'.split('')))),
      mutation(computeContentDigest(b, 'sha-512')),
      fc.constant(`${computeContentDigest(b)}, ${computeContentDigest(b, 'sha-512')}`),
      fc.constant(`${computeContentDigest(b)}, md5=:AAAA:`),
      fc.constant(computeContentDigest(b)),
    )
  await holds(
    t,
    'verifyContentDigest agrees with the oracle',
    fc.property(body.chain((b) => fc.tuple(fc.constant(b), value(b))), ([b, v]) => {
      const r = verifyContentDigest(v, b)
      if (!['ok', 'mismatch', 'unsupported', 'malformed'].includes(r)) throw new Error(`result ${r}`)
      if ((r === 'ok') !== digestOracle(v, b)) throw new Error(`${r} for ${v}`)
      return true
    }),
    params(2000),
  )
})

t.test('Content-Digest: a digest never verifies another body', async (t) => {
  await holds(
    t,
    'mutated body refused',
    fc.property(fc.string({ maxLength: 64 }).chain((s) => fc.tuple(fc.constant(s), mutation(s))), fc.constantFrom('sha-256' as const, 'sha-512' as const), ([body, other], alg) => {
      return verifyContentDigest(computeContentDigest(body, alg), Buffer.from(body)) === 'ok' && verifyContentDigest(computeContentDigest(body, alg), Buffer.from(other)) !== 'ok'
    }),
    params(1500),
  )
})

t.test('the inner-list fast path writes exactly what structured-headers writes, or steps aside', async (t) => {
  const key = fc.stringMatching(/^[a-z*][a-z0-9_.*-]{0,8}$/)
  const bare = fc.oneof(
    fc.string({ unit: fc.oneof(latin1Char, trickyChar), maxLength: 24 }),
    fc.integer({ min: -1_000_000_000_000_000, max: 1_000_000_000_000_000 }),
    fc.boolean(),
    fc.double({ noNaN: true, min: -1e6, max: 1e6 }),
  )
  const parameters = fc.uniqueArray(fc.tuple(key, bare), { selector: ([k]) => k, maxLength: 4 }).map((entries) => new Map(entries))
  const item = fc.tuple(fc.oneof(fc.string({ unit: fc.oneof(latin1Char, trickyChar), maxLength: 24 }), fc.constantFrom('@method', '@path', 'content-digest', '@query-param')), parameters)
  const list = fc.tuple(fc.array(item, { maxLength: 6 }), parameters) as fc.Arbitrary<InnerList>
  let fast = 0
  await holds(
    t,
    'plainInnerList equals serializeInnerList whenever it answers',
    fc.property(list, (l) => {
      const ours = plainInnerList(l)
      if (ours === undefined) return true
      fast++
      return ours === serializeInnerList(l)
    }),
    params(2000),
  )
  t.ok(fast > 100, `the fast path answered for ${fast} lists (a property never exercised proves nothing)`)
  // What a real signature covers takes the fast path.
  const real = parseDictionary('sig1=("@method" "@authority" "@path" "content-digest" "@query-param";name="id");created=1700000000;keyid="worker-7";alg="hmac-sha256";nonce="n-1"').get('sig1')!
  t.ok(isInnerList(real))
  t.equal(plainInnerList(real as InnerList), serializeInnerList(real as InnerList))
})
