// RFC 8941 / 9651 Dictionaries (Signature-Input, Signature, Content-Digest) for the verify path. A profile
// of rfc9421 POST requests showed structured-headers' parser as the largest allocation of a verification
// (~10 KB per request of ~57 KB: it builds every key, token, string and number a character at a time and
// matches a regex per character; docs/performance.md). `readDictionary` reads the shapes signatures use —
// keys, inner lists, parameters, integers, plain strings, tokens, byte sequences, booleans — with slices,
// and hands anything else (a decimal, an escape, a date, a display string, and every malformed input) to
// structured-headers itself. So every refusal, and every rarer shape, is the library's answer, and
// test/unit/fuzz/sf-dictionary.test.ts holds what the fast path returns equal to the library's result.
import { Token, parseDictionary as libraryParseDictionary, type BareItem, type Dictionary, type InnerList, type Item, type Parameters } from 'structured-headers'

/** structured-headers' parseDictionary, faster on the common shapes; throws what the library throws. */
export function parseDictionary(input: string): Dictionary {
  return fastDictionary(input) ?? libraryParseDictionary(input)
}

/** Failure of the fast path: the library decides (it returns the value or throws). */
const GIVE_UP = Symbol('give up')
class Cursor {
  pos = 0
  constructor(readonly s: string) {}
}

/** The Dictionary, or undefined where the fast path does not decide (exported for the differential test). */
export function fastDictionary(input: string): Dictionary | undefined {
  const c = new Cursor(input)
  const s = input
  const n = s.length
  while (c.pos < n && s.charCodeAt(c.pos) === 0x20) c.pos++
  const out: Dictionary = new Map()
  while (c.pos < n) {
    const key = readKey(c)
    if (key === GIVE_UP) return undefined
    let member: Item | InnerList | typeof GIVE_UP
    if (s.charCodeAt(c.pos) === 0x3d /* = */) {
      c.pos++
      member = s.charCodeAt(c.pos) === 0x28 /* ( */ ? readInnerList(c) : readItem(c)
    } else {
      const params = readParameters(c)
      member = params === GIVE_UP ? GIVE_UP : [true, params]
    }
    if (member === GIVE_UP) return undefined
    out.set(key, member)
    skipOws(c)
    if (c.pos >= n) return out
    if (s.charCodeAt(c.pos) !== 0x2c /* , */) return undefined
    c.pos++
    skipOws(c)
    if (c.pos >= n) return undefined // a trailing comma
  }
  return out
}

function skipOws(c: Cursor): void {
  for (let ch = c.s.charCodeAt(c.pos); ch === 0x20 || ch === 0x09; ch = c.s.charCodeAt(c.pos)) c.pos++
}

function readInnerList(c: Cursor): InnerList | typeof GIVE_UP {
  const s = c.s
  c.pos++ // (
  const items: Item[] = []
  while (c.pos < s.length) {
    while (s.charCodeAt(c.pos) === 0x20) c.pos++
    if (s.charCodeAt(c.pos) === 0x29 /* ) */) {
      c.pos++
      const params = readParameters(c)
      return params === GIVE_UP ? GIVE_UP : [items, params]
    }
    const item = readItem(c)
    if (item === GIVE_UP) return GIVE_UP
    items.push(item)
    const next = s.charCodeAt(c.pos)
    if (next !== 0x20 && next !== 0x29) return GIVE_UP
  }
  return GIVE_UP
}

function readItem(c: Cursor): Item | typeof GIVE_UP {
  const bare = readBareItem(c)
  if (bare === GIVE_UP) return GIVE_UP
  const params = readParameters(c)
  return params === GIVE_UP ? GIVE_UP : [bare, params]
}

function readParameters(c: Cursor): Parameters | typeof GIVE_UP {
  const s = c.s
  const params: Parameters = new Map()
  while (s.charCodeAt(c.pos) === 0x3b /* ; */) {
    c.pos++
    while (s.charCodeAt(c.pos) === 0x20) c.pos++
    const key = readKey(c)
    if (key === GIVE_UP) return GIVE_UP
    let value: BareItem | typeof GIVE_UP = true
    if (s.charCodeAt(c.pos) === 0x3d /* = */) {
      c.pos++
      value = readBareItem(c)
      if (value === GIVE_UP) return GIVE_UP
    }
    params.set(key, value)
  }
  return params
}

/** key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
function readKey(c: Cursor): string | typeof GIVE_UP {
  const s = c.s
  const start = c.pos
  const first = s.charCodeAt(start)
  if (!((first >= 0x61 && first <= 0x7a) || first === 0x2a)) return GIVE_UP
  let i = start + 1
  for (let ch = s.charCodeAt(i); (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch === 0x5f || ch === 0x2d || ch === 0x2e || ch === 0x2a; ch = s.charCodeAt(i)) i++
  c.pos = i
  return s.slice(start, i)
}

function readBareItem(c: Cursor): BareItem | typeof GIVE_UP {
  const ch = c.s.charCodeAt(c.pos)
  if ((ch >= 0x30 && ch <= 0x39) || ch === 0x2d) return readInteger(c)
  if (ch === 0x22 /* " */) return readString(c)
  if ((ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a) || ch === 0x2a) return readToken(c)
  if (ch === 0x3a /* : */) return readBytes(c)
  if (ch === 0x3f /* ? */) {
    const b = c.s.charCodeAt(c.pos + 1)
    if (b !== 0x30 && b !== 0x31) return GIVE_UP
    c.pos += 2
    return b === 0x31
  }
  return GIVE_UP // a date, a display string, or nothing valid
}

/** An integer of 1 to 15 digits; a decimal is the library's. */
function readInteger(c: Cursor): number | typeof GIVE_UP {
  const s = c.s
  let i = c.pos
  let sign = 1
  if (s.charCodeAt(i) === 0x2d) {
    sign = -1
    i++
  }
  const start = i
  let value = 0
  for (let ch = s.charCodeAt(i); ch >= 0x30 && ch <= 0x39; ch = s.charCodeAt(i)) {
    value = value * 10 + (ch - 0x30)
    i++
  }
  const digits = i - start
  if (digits === 0 || digits > 15 || s.charCodeAt(i) === 0x2e /* . */) return GIVE_UP
  c.pos = i
  return value * sign
}

/** A string of printable ASCII without escapes; one with a backslash is the library's. */
function readString(c: Cursor): string | typeof GIVE_UP {
  const s = c.s
  const start = c.pos + 1
  for (let i = start; i < s.length; i++) {
    const ch = s.charCodeAt(i)
    if (ch === 0x22) {
      c.pos = i + 1
      return s.slice(start, i)
    }
    if (ch < 0x20 || ch > 0x7e || ch === 0x5c) return GIVE_UP
  }
  return GIVE_UP
}

function readToken(c: Cursor): Token {
  const s = c.s
  const start = c.pos
  let i = start + 1
  while (i < s.length && isTokenChar(s.charCodeAt(i))) i++
  c.pos = i
  return new Token(s.slice(start, i))
}

/** tchar / ":" / "/" */
function isTokenChar(ch: number): boolean {
  if ((ch >= 0x30 && ch <= 0x39) || (ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a)) return true
  switch (ch) {
    case 0x3a: case 0x2f: case 0x21: case 0x23: case 0x24: case 0x25: case 0x26: case 0x27: case 0x2a:
    case 0x2b: case 0x2d: case 0x2e: case 0x5e: case 0x5f: case 0x60: case 0x7c: case 0x7e:
      return true
    default:
      return false
  }
}

/**
 * Canonical base64 only (length a multiple of 4, `=` only as its last one or two characters), which the
 * library's atob decodes to the same bytes; anything looser is the library's.
 */
function readBytes(c: Cursor): ArrayBuffer | typeof GIVE_UP {
  const s = c.s
  const start = c.pos + 1
  const end = s.indexOf(':', start)
  if (end < 0) return GIVE_UP
  const length = end - start
  if (length % 4 !== 0) return GIVE_UP
  let pad = 0
  for (let i = start; i < end; i++) {
    const ch = s.charCodeAt(i)
    if (ch === 0x3d /* = */) {
      if (i < end - 2) return GIVE_UP
      pad++
    } else if (pad > 0 || !((ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch === 0x2b || ch === 0x2f)) {
      return GIVE_UP
    }
  }
  const bytes = new ArrayBuffer((length / 4) * 3 - pad)
  if (bytes.byteLength > 0) Buffer.from(bytes).write(s.slice(start, end), 'base64')
  c.pos = end + 1
  return bytes
}
