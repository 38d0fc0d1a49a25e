// RFC 9421 signature bases reproduced byte for byte: Appendix B.2 and the §2 examples.
import t from 'tap'
import { createPublicKey, verify, constants } from 'node:crypto'
import { parseDictionary, type InnerList, type Item } from 'structured-headers'
import { buildSignatureBase, hmacSha256, parseSignatureFields, formEncode, type SignedMessage } from '../../../src/auth/signature-base.js'
import { computeContentDigest } from '../../../src/auth/content-digest.js'

/** The RFC's `test-request` (Appendix B.2). */
const TEST_REQUEST_HEADERS: Array<[string, string]> = [
  ['Host', 'example.com'],
  ['Date', 'Tue, 20 Apr 2021 02:07:55 GMT'],
  ['Content-Type', 'application/json'],
  ['Content-Digest', 'sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:'],
  ['Content-Length', '18'],
]

function message(method: string, target: string, headers: Array<[string, string]>, scheme = 'https'): SignedMessage {
  const at = target.indexOf('?')
  return {
    method,
    scheme,
    authority: (headers.find(([k]) => k.toLowerCase() === 'host')?.[1] ?? '').toLowerCase(),
    path: at === -1 ? target : target.slice(0, at),
    query: at === -1 ? '' : target.slice(at),
    target,
    field: (name) => {
      const v = headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v)
      return v.length ? v : undefined
    },
  }
}

const testRequest = message('POST', '/foo?param=Value&Pet=dog', TEST_REQUEST_HEADERS)

/** The inner list of one Signature-Input field value (its only member). */
function covered(signatureInput: string): InnerList {
  return [...parseDictionary(signatureInput).values()][0] as InnerList
}

function base(msg: SignedMessage, signatureInput: string, options = {}): string {
  const r = buildSignatureBase(msg, covered(signatureInput), options)
  if (!r.ok) throw new Error(r.reason)
  return r.base
}

const RSA_PSS_PUBLIC = createPublicKey(`-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----`)
const ED25519_PUBLIC = createPublicKey(`-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`)

function rsaPssVerifies(signatureBase: string, sigB64: string): boolean {
  return verify('sha512', Buffer.from(signatureBase, 'ascii'), { key: RSA_PSS_PUBLIC, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, Buffer.from(sigB64, 'base64'))
}

t.test('B.2.1 minimal signature: base, and the RFC signature verifies over it', async (t) => {
  const input = 'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
  const b = base(testRequest, input)
  t.equal(b, '"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"')
  const sig =
    'd2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q=='
  t.ok(rsaPssVerifies(b, sig))
})

t.test('B.2.2 selective components with @query-param and tag', async (t) => {
  const input = 'sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"'
  const b = base(testRequest, input)
  t.equal(
    b,
    [
      '"@authority": example.com',
      '"content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
      '"@query-param";name="Pet": dog',
      '"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
    ].join('\n'),
  )
  const sig =
    'LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SARYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw=='
  t.ok(rsaPssVerifies(b, sig))
})

t.test('B.2.3 full coverage', async (t) => {
  const input =
    'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"'
  const b = base(testRequest, input)
  t.equal(
    b,
    [
      '"date": Tue, 20 Apr 2021 02:07:55 GMT',
      '"@method": POST',
      '"@path": /foo',
      '"@query": ?param=Value&Pet=dog',
      '"@authority": example.com',
      '"content-type": application/json',
      '"content-digest": sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:',
      '"content-length": 18',
      '"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"',
    ].join('\n'),
  )
  const sig =
    'bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA=='
  t.ok(rsaPssVerifies(b, sig))
})

t.test('B.2.4 covers @status: a request cannot produce that base', async (t) => {
  const r = buildSignatureBase(testRequest, covered('sig-b24=("@status" "content-type");created=1618884473;keyid="test-key-ecc-p256"'))
  t.equal(r.ok, false)
})

t.test('B.2.5 hmac-sha256 with test-shared-secret: base and signature', async (t) => {
  const input = 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
  const signature = 'sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:'
  const secret = Buffer.from('uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==', 'base64')
  const entries = parseSignatureFields(input, signature)
  t.equal(entries?.length, 1)
  const entry = entries![0]!
  const r = buildSignatureBase(testRequest, entry.covered)
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(
    r.base,
    [
      '"date": Tue, 20 Apr 2021 02:07:55 GMT',
      '"@authority": example.com',
      '"content-type": application/json',
      '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"',
    ].join('\n'),
  )
  t.same(hmacSha256(secret, r.base), entry.signature, 'the RFC signature verifies')
  t.notSame(hmacSha256(Buffer.concat([secret, Buffer.from([0])]), r.base), entry.signature, 'another key does not')
})

t.test('B.2.6 ed25519 base, and the RFC signature verifies over it', async (t) => {
  const input = 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"'
  const b = base(testRequest, input)
  t.equal(
    b,
    [
      '"date": Tue, 20 Apr 2021 02:07:55 GMT',
      '"@method": POST',
      '"@path": /foo',
      '"@authority": example.com',
      '"content-type": application/json',
      '"content-length": 18',
      '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"',
    ].join('\n'),
  )
  const sig = 'wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=='
  t.ok(verify(null, Buffer.from(b, 'ascii'), ED25519_PUBLIC, Buffer.from(sig, 'base64')))
})

t.test('§2.1 field values: combined, trimmed, obs-fold, empty', async (t) => {
  const msg = message('GET', '/', [
    ['Host', 'www.example.com'],
    ['X-OWS-Header', '   Leading and trailing whitespace.   '],
    ['X-Obs-Fold-Header', 'Obsolete\r\n    line folding.'],
    ['Cache-Control', 'max-age=60'],
    ['Cache-Control', '   must-revalidate'],
    ['Example-Dict', ' a=1,    b=2;x=1;y=2,   c=(a   b   c)'],
    ['X-Empty-Header', ''],
  ])
  const b = base(msg, 's=("x-ows-header" "x-obs-fold-header" "cache-control" "example-dict" "x-empty-header")')
  t.equal(
    b.split('\n').slice(0, 5).join('\n'),
    [
      '"x-ows-header": Leading and trailing whitespace.',
      '"x-obs-fold-header": Obsolete line folding.',
      '"cache-control": max-age=60, must-revalidate',
      '"example-dict": a=1,    b=2;x=1;y=2,   c=(a   b   c)',
      '"x-empty-header": ',
    ].join('\n'),
  )
})

t.test('§2.1.1 sf and §2.1.2 key re-serialize dictionary members', async (t) => {
  const msg = message('GET', '/', [['Example-Dict', ' a=1, b=2;x=1;y=2, c=(a   b    c), d']])
  const sf = { structuredFields: { 'example-dict': 'dictionary' as const } }
  t.equal(base(msg, 's=("example-dict";sf)', sf).split('\n')[0], '"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c), d')
  const keyed = base(msg, 's=("example-dict";key="a" "example-dict";key="d" "example-dict";key="b" "example-dict";key="c")')
  t.equal(
    keyed.split('\n').slice(0, 4).join('\n'),
    ['"example-dict";key="a": 1', '"example-dict";key="d": ?1', '"example-dict";key="b": 2;x=1;y=2', '"example-dict";key="c": (a b c)'].join('\n'),
  )
  t.equal(buildSignatureBase(msg, covered('s=("example-dict";sf)')).ok, false, 'sf on a field of unknown type is an error')
  t.equal(buildSignatureBase(msg, covered('s=("example-dict";key="zz")')).ok, false, 'absent member is an error')
})

t.test('§2.1.3 bs wraps each instance as a byte sequence', async (t) => {
  const two = message('GET', '/', [
    ['Example-Header', 'value, with, lots'],
    ['Example-Header', 'of, commas'],
  ])
  const one = message('GET', '/', [['Example-Header', 'value, with, lots, of, commas']])
  t.equal(base(two, 's=("example-header";bs)').split('\n')[0], '"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:')
  t.equal(base(one, 's=("example-header";bs)').split('\n')[0], '"example-header";bs: :dmFsdWUsIHdpdGgsIGxvdHMsIG9mLCBjb21tYXM=:')
})

t.test('§2.2 derived components', async (t) => {
  const msg = message('POST', '/path?param=value&foo=bar&baz=bat%2Dman', [['Host', 'www.example.com']])
  const b = base(msg, 's=("@method" "@target-uri" "@authority" "@scheme" "@request-target" "@path" "@query")')
  t.equal(
    b.split('\n').slice(0, 7).join('\n'),
    [
      '"@method": POST',
      '"@target-uri": https://www.example.com/path?param=value&foo=bar&baz=bat%2Dman',
      '"@authority": www.example.com',
      '"@scheme": https',
      '"@request-target": /path?param=value&foo=bar&baz=bat%2Dman',
      '"@path": /path',
      '"@query": ?param=value&foo=bar&baz=bat%2Dman',
    ].join('\n'),
  )
  const noQuery = message('GET', '/path', [['Host', 'www.example.com']])
  t.equal(base(noQuery, 's=("@query")').split('\n')[0], '"@query": ?', 'absent query is a lone ?')
})

t.test('§2.2.8 @query-param values are form-decoded then re-encoded', async (t) => {
  const msg = message('GET', '/path?param=value&foo=bar&baz=batman&qux=', [['Host', 'www.example.com']])
  t.equal(
    base(msg, 's=("@query-param";name="baz" "@query-param";name="qux" "@query-param";name="param")').split('\n').slice(0, 3).join('\n'),
    ['"@query-param";name="baz": batman', '"@query-param";name="qux": ', '"@query-param";name="param": value'].join('\n'),
  )
  const odd = message('GET', '/parameters?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something', [['Host', 'h']])
  t.equal(
    base(odd, 's=("@query-param";name="var" "@query-param";name="bar" "@query-param";name="fa%C3%A7ade%22%3A%20")').split('\n').slice(0, 3).join('\n'),
    [
      '"@query-param";name="var": this%20is%20a%20big%0Amultiline%20value',
      '"@query-param";name="bar": with%20plus%20whitespace',
      '"@query-param";name="fa%C3%A7ade%22%3A%20": something',
    ].join('\n'),
  )
  const repeated = message('GET', '/p?a=1&a=2', [['Host', 'h']])
  t.equal(buildSignatureBase(repeated, covered('s=("@query-param";name="a")')).ok, false, 'a repeated name is an error')
  t.equal(buildSignatureBase(repeated, covered('s=("@query-param";name="b")')).ok, false, 'an absent name is an error')
  t.equal(formEncode("a b!'()~*-._"), 'a%20b%21%27%28%29%7E*-._')
})

t.test('errors, never throws: duplicates, unknown components, bad parameters, non-ASCII', async (t) => {
  const cases = [
    's=("@method" "@method")',
    's=("date";bs;sf)',
    's=("date";bs "date";bs)',
    's=("@unknown")',
    's=("@signature-params")',
    's=("@method";req)',
    's=("date";req)',
    's=("date";tr)',
    's=("date";foo)',
    's=("absent-header")',
    's=("Date")',
    's=("@query-param")',
  ]
  for (const c of cases) t.equal(buildSignatureBase(testRequest, covered(c)).ok, false, c)
  t.equal(buildSignatureBase(testRequest, [[[1, new Map()]], new Map()]).ok, false, 'non-string component name')
  const latin = message('GET', '/', [['Host', 'h'], ['X-Name', 'caf\u00e9']])
  t.equal(buildSignatureBase(latin, covered('s=("x-name")')).ok, false, 'non-ASCII value')
  t.ok(buildSignatureBase(testRequest, covered('s=("date";sf;bs)')).ok === false)
  t.ok(buildSignatureBase(testRequest, covered('s=("content-digest";key="sha-512" "content-digest";key="sha-512")')).ok === false, 'duplicate with params')
  t.ok(buildSignatureBase(message('GET', '/', []), covered('s=("@authority")')).ok === false, 'no Host')
})

t.test('parseSignatureFields: malformed input is undefined, odd members are skipped', async (t) => {
  t.equal(parseSignatureFields('not a dictionary ((', 'sig=:AA==:'), undefined)
  t.equal(parseSignatureFields('sig=()', 'sig=:AA==:,'), undefined)
  t.same(parseSignatureFields('a=1, b=("@method")', 'b=:AAAA:')?.map((e) => e.label), ['b'])
  t.equal(parseSignatureFields('b=("@method")', 'b="text"')?.[0]?.signature, undefined, 'a string is not a signature')
  t.equal(parseSignatureFields('b=("@method")', 'c=:AAAA:')?.[0]?.signature, undefined, 'no matching label')
})

t.test('every covered "x";key=… re-parsed the whole field and every @query-param the whole query', async (t) => {
  const dict = Array.from({ length: 40 }, (_, i) => `m${i}=${i}`).join(', ')
  const query = '?' + Array.from({ length: 40 }, (_, i) => `p${i}=${i}`).join('&')
  const msg = message('GET', '/x' + query, [['Host', 'example.com'], ['X-Dict', dict], ['Priority', 'u=1, i']])
  let fieldReads = 0
  const counted: SignedMessage = { ...msg, field: (name) => (fieldReads++, msg.field(name)) }
  const members = Array.from({ length: 14 }, (_, i) => `"x-dict";key="m${i}"`)
  const params = Array.from({ length: 14 }, (_, i) => `"@query-param";name="p${i}"`)
  const input = `sig1=(${[...members, ...params, '"priority";sf', '"priority";key="u"', '"x-dict"', '"@query"'].join(' ')});created=1`
  const parses: string[] = []
  const r = buildSignatureBase(counted, covered(input), { onParse: (what) => parses.push(what) })
  t.equal(r.ok, true, r.ok ? '' : r.reason)
  t.same(parses.sort(), ['@query', 'priority', 'x-dict'], 'each field and the query parsed once')
  t.equal(fieldReads, 2, 'each header read once (x-dict, priority)')
  if (r.ok) {
    t.match(r.base, /^"x-dict";key="m13": 13$/m)
    t.match(r.base, /^"@query-param";name="p13": 13$/m)
  }
})

t.test('a failing base costs no more parses than a passing one', async (t) => {
  const msg = message('GET', '/x?a=1&a=2', [['Host', 'example.com'], ['X-Dict', 'a=1, b=(']])
  const parses: string[] = []
  const bad = `sig1=("x-dict";key="a" "x-dict";key="b" "x-dict";sf "@query-param";name="a" "@query-param";name="a2");created=1`
  t.equal(buildSignatureBase(msg, covered(bad), { onParse: (w) => parses.push(w), structuredFields: { 'x-dict': 'dictionary' } }).ok, false)
  t.ok(parses.length <= 2, `at most one parse of x-dict and one of the query: ${parses.join(',')}`)
})

t.test('more than 32 components: refused before any is looked at', async (t) => {
  const names = Array.from({ length: 33 }, (_, i) => `"x-h${i}"`)
  const headers: Array<[string, string]> = [['Host', 'example.com'], ...names.map((_, i) => [`x-h${i}`, String(i)] as [string, string])]
  const msg = message('GET', '/x', headers)
  let fieldReads = 0
  const counted: SignedMessage = { ...msg, field: (name) => (fieldReads++, msg.field(name)) }
  const r = buildSignatureBase(counted, covered(`sig1=(${names.join(' ')});created=1`))
  t.equal(r.ok, false)
  t.equal(fieldReads, 0, 'no header was read')
  t.equal(buildSignatureBase(msg, covered(`sig1=(${names.slice(1).join(' ')});created=1`)).ok, true, '32 are fine')
})

t.test('the Dictionaries the base parsed are handed back (content-digest is then not parsed again)', async (t) => {
  const digest = 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:'
  const msg = message('POST', '/x', [['Host', 'example.com'], ['Content-Digest', digest], ['X-L', 'a, b']])
  const parses: string[] = []
  const r = buildSignatureBase(msg, covered('sig1=("content-digest";sf "content-digest";key="sha-256" "x-l";sf);created=1'), { onParse: (w) => parses.push(w), structuredFields: { 'x-l': 'list' } })
  t.equal(r.ok, true, r.ok ? '' : r.reason)
  if (!r.ok) return
  t.same([...(r.dictionaries?.keys() ?? [])], ['content-digest'], 'only Dictionaries, by field name')
  t.same(parses, ['content-digest', 'x-l'])
  t.equal(buildSignatureBase(msg, covered('sig1=("content-digest");created=1')).ok && 'dictionaries' in (buildSignatureBase(msg, covered('sig1=("content-digest");created=1')) as object), false, 'none parsed: none handed back')
})

t.test('a Dictionary a signature base hands out is the caller\'s: changing it changes no later parse', async (t) => {
  // buildSignatureBase is public (portcullis/client). A parse once shared one empty Parameters map between
  // every item without parameters; a caller annotating one then changed every later base of the process.
  const message = (body: string): SignedMessage => {
    const digest = computeContentDigest(Buffer.from(body))
    return { method: 'POST', scheme: 'https', authority: 'gw.example', path: '/p', query: '', field: (name) => (name === 'content-digest' ? [digest] : undefined) }
  }
  const covered: InnerList = [[['content-digest', new Map([['sf', true]])] as Item], new Map([['keyid', 'k1']])]
  const first = buildSignatureBase(message('one'), covered)
  const member = (first.ok ? first.dictionaries?.get('content-digest')?.get('sha-256') : undefined) as Item | undefined
  t.ok(member, 'the parsed Content-Digest is handed out')
  member![1].set('seen', true)
  const second = buildSignatureBase(message('two'), covered)
  t.equal(second.ok ? second.base.split('\n')[0] : '', `"content-digest";sf: ${computeContentDigest(Buffer.from('two'))}`, 'the next base is unchanged')
  const third = buildSignatureBase(message('three'), covered)
  const item = (third.ok ? third.dictionaries?.get('content-digest')?.get('sha-256') : undefined) as Item | undefined
  t.equal(item?.[1].size, 0, 'a later parse has no parameter it was not sent')
})
