// The verify path's own Dictionary reader (src/auth/sf-dictionary.ts) against structured-headers, the
// library it stands in for: on every input where the fast path answers, it answers exactly what the
// library returns; where the library throws, the fast path never answers (so the refusal is the
// library's); and the shapes signatures use do take the fast path.
import t from 'tap'
import fc from 'fast-check'
import { DisplayString, Token, parseDictionary as libraryParse, serializeDictionary, type BareItem, type Dictionary, type InnerList, type Item, type Parameters } from 'structured-headers'
import { fastDictionary, parseDictionary } from '../../../src/auth/sf-dictionary.js'
import { signRfc9421 } from '../../../src/client/rfc9421.js'
import { computeContentDigest } from '../../../src/auth/content-digest.js'
import { holds, latin1String, mutation, params, trickyChar } from './settings.js'

/** A comparable rendering: every type, sign of zero and byte kept apart. */
function shape(value: unknown): unknown {
  if (value instanceof Map) return { map: [...value].map(([k, v]) => [k, shape(v)]) }
  if (Array.isArray(value)) return value.map(shape)
  if (value instanceof Token) return { token: value.toString() }
  if (value instanceof DisplayString) return { display: value.toString() }
  if (value instanceof ArrayBuffer) return { bytes: Buffer.from(value).toString('hex'), ab: true }
  if (ArrayBuffer.isView(value)) return { view: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') }
  if (value instanceof Date) return { date: value.getTime() }
  if (typeof value === 'number') return Object.is(value, -0) ? { negzero: true } : { n: value }
  return value
}

type Answer = { ok: true; value: unknown } | { ok: false }
function library(input: string): Answer {
  try {
    return { ok: true, value: shape(libraryParse(input)) }
  } catch {
    return { ok: false }
  }
}

/** The property: the fast path answers only what the library answers, and parseDictionary is the library's result. */
function agrees(input: string, reader: (input: string) => Dictionary | undefined = fastDictionary): boolean {
  const lib = library(input)
  const fast = reader(input)
  if (fast !== undefined && (!lib.ok || JSON.stringify(shape(fast)) !== JSON.stringify(lib.value))) return false
  if (reader !== fastDictionary) return true
  let whole: Answer
  try {
    whole = { ok: true, value: shape(parseDictionary(input)) }
  } catch {
    whole = { ok: false }
  }
  return JSON.stringify(whole) === JSON.stringify(lib)
}

const key = fc.stringMatching(/^[a-z*][a-z0-9_.*-]{0,6}$/)
const bare: fc.Arbitrary<BareItem> = fc.oneof(
  fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }),
  fc.constantFrom(0, -0, 1, -1, 999_999_999_999_999),
  fc.double({ min: -999_999_999_999, max: 999_999_999_999, noNaN: true }).map((d) => Math.round(d * 1000) / 1000),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
  fc.stringMatching(/^[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]{0,8}$/).map((s) => new Token(s)),
  fc.uint8Array({ maxLength: 40 }).map((b) => b.buffer as ArrayBuffer),
  fc.boolean(),
  fc.integer({ min: -2_000_000_000, max: 2_000_000_000 }).map((s) => new Date(s * 1000)),
  fc.string({ maxLength: 6 }).map((s) => new DisplayString(s)),
)
const parameters: fc.Arbitrary<Parameters> = fc.array(fc.tuple(key, bare), { maxLength: 3 }).map((e) => new Map(e))
const item: fc.Arbitrary<Item> = fc.tuple(bare, parameters)
const innerList: fc.Arbitrary<InnerList> = fc.tuple(fc.array(item, { maxLength: 4 }), parameters)
const dictionary: fc.Arbitrary<Dictionary> = fc.array(fc.tuple(key, fc.oneof(item, innerList)), { maxLength: 4 }).map((e) => new Map(e))

/** A serialized Dictionary, or undefined when the library cannot write the value (e.g. a decimal it rounds). */
function serialized(d: Dictionary): string | undefined {
  try {
    return serializeDictionary(d)
  } catch {
    return undefined
  }
}

const valid = dictionary.map(serialized).filter((s): s is string => s !== undefined)
/** Joined with the separators HTTP allows between combined field lines, and padded as a header may be. */
const spaced = fc.tuple(valid, valid, fc.constantFrom(',', ', ', ' ,', ',\t', '\t,  ')).map(([a, b, sep]) => (a && b ? a + sep + b : a + b))

const signatures = Array.from({ length: 8 }, (_, i) => {
  const h = signRfc9421({ keyId: `worker-${i}`, secret: 'k'.repeat(32), method: 'POST', url: `http://gw.example/p/${i}?q=${i}`, body: 'x'.repeat(i * 10) })
  return h as unknown as Record<string, string>
})

/** Signature-Input, Signature and (with a body) Content-Digest. */
function fieldsOf(h: Record<string, string>): string[] {
  return ['signature-input', 'signature', 'content-digest'].flatMap((name) => (h[name] === undefined ? [] : [h[name]]))
}

t.test('signature fields the client library writes take the fast path, and it reads them as the library does', async (t) => {
  for (const h of signatures) {
    for (const field of fieldsOf(h)) {
      t.ok(fastDictionary(field) !== undefined, `fast path: ${field.slice(0, 40)}`)
      t.ok(agrees(field), 'same as the library')
    }
  }
  const digest = computeContentDigest('{}', 'sha-512')
  t.ok(fastDictionary(digest) !== undefined && agrees(digest), 'a sha-512 Content-Digest')
})

t.test('pinned corners: each either agrees or is the library\'s', async (t) => {
  const corners = [
    '', ' ', '   a=1', 'a=1 ', 'a=1,', 'a=1,,b=2', 'a=1, b', 'a;b=?0', 'a=?2', 'a=-0', 'a=-', 'a=1.5', 'a=1.', 'a=123456789012345', 'a=1234567890123456',
    'a="x\\"y"', 'a="\x7f"', 'a="é"', 'a=:YQ==:', 'a=:YQ:', 'a=:Y===:', 'a=:YQ=A:', 'a=::', 'a=:', 'a=@1', 'a=%"x"', 'a=(1 2)', 'a=(1  2 )', 'a=(1,2)', 'a=(1',
    'A=1', '*=1', 'a=*x', 'a=x:y/z', 'a=1\t,\tb=2', 'a=1,\tb=2', '\ta=1', 'a=(":YQ==:")', 'a=1;b;c=:YQ==:;d="e"', 'a=1,a=2', 'a=b;c', 'a=(), b=();x', 'a=1\n,b=2', 'a=1,\nb=2', 'a=1\r\n, b=2', 'a=(1\t2)', 'a=(\t1)', 'a=1;\tb',
  ]
  for (const c of corners) t.ok(agrees(c), JSON.stringify(c))
  t.ok(fastDictionary('a=1.5') === undefined, 'a decimal is the library\'s')
  t.ok(fastDictionary('a="x\\"y"') === undefined, 'an escape is the library\'s')
  t.ok(fastDictionary('a=:YQ:') === undefined, 'unpadded base64 is the library\'s')
  t.throws(() => parseDictionary('a=1,'), 'a trailing comma is refused (by the library)')
})

t.test('differential: random Dictionaries, their mutations, and arbitrary text', async (t) => {
  await holds(t, 'serialized Dictionaries', fc.property(spaced, (s) => agrees(s)), params(400))
  await holds(t, 'mutated Dictionaries', fc.property(valid.chain((s) => fc.tuple(fc.constant(s), mutation(s))), ([, m]) => agrees(m)), params(600))
  await holds(t, 'mutated signature fields', fc.property(fc.constantFrom(...signatures.flatMap(fieldsOf)).chain((s) => mutation(s)), (m) => agrees(m)), params(600))
  await holds(t, 'text of syntax characters', fc.property(fc.string({ unit: trickyChar, maxLength: 24 }), (s) => agrees(s)), params(400))
  await holds(t, 'latin1 text', fc.property(latin1String(40), (s) => agrees(s)), params(200))
})

t.test('the comparison can fail: readers that are wrong in small ways are caught', async (t) => {
  t.notOk(agrees('a=-0', (s) => fastDictionary(s.replace('-0', '0'))), '0 for -0')
  t.notOk(agrees('a=1,', (s) => fastDictionary(s.replace(/,$/, ''))), 'an answer where the library refuses')
  t.notOk(agrees('a=:YWI=:', (s) => fastDictionary(s.replace('YWI=', 'YWE='))), 'other bytes')
  t.notOk(agrees('a=x', (s) => fastDictionary(s.replace('=x', '="x"'))), 'a string for a token')
})
