// RFC 9421 §2: the signature base of a request, and parsing of Signature-Input / Signature.
// The one place signature structured fields are parsed; pure, and reports every fault as a value.
// Bounded work (DESIGN §4.4): at most 32 components, each header field and the query parsed once.
import { createHmac, type KeyObject } from 'node:crypto'
import {
  isInnerList,
  parseItem,
  parseList,
  serializeDictionary,
  serializeInnerList,
  serializeItem,
  serializeList,
  serializeParameters,
  type Dictionary,
  type InnerList,
  type Item,
  type List,
  type Parameters,
} from 'structured-headers'
import { parseDictionary } from './sf-dictionary.js'

/** What a signature base is built from: one request, as the signer sent it or the verifier received it. */
export interface SignedMessage {
  method: string
  /** `http` or `https`. */
  scheme: string
  /** host[:port], lower-cased, default port omitted. */
  authority: string
  /** Absolute path as sent, not decoded; '' is read as `/`. */
  path: string
  /** The query as sent with its leading `?`, or ''. */
  query: string
  /** The request target as sent; defaults to path + query. */
  target?: string
  /** Every instance of header `name` (lower-case) in order, or undefined when absent. */
  field(name: string): readonly string[] | undefined
}

export type StructuredType = 'dictionary' | 'list' | 'item'

/** Fields whose structured type is known, so `;sf` can re-serialize them (RFC 9421 §2.1.1). */
export const KNOWN_STRUCTURED_FIELDS: Readonly<Record<string, StructuredType>> = {
  'content-digest': 'dictionary',
  'repr-digest': 'dictionary',
  'want-content-digest': 'dictionary',
  'want-repr-digest': 'dictionary',
  'signature-input': 'dictionary',
  signature: 'dictionary',
  'accept-signature': 'dictionary',
  priority: 'dictionary',
}

export interface BaseOptions {
  /** Extra fields the application knows to be structured (for `;sf`). */
  structuredFields?: Readonly<Record<string, StructuredType>>
  /** Instrumentation: called once each time a header field (its name) or the query (`@query`) is parsed. */
  onParse?: (what: string) => void
}

/** DESIGN §4.4: a signature covering more components is refused before any is looked at. */
export const MAX_COVERED_COMPONENTS = 32

/**
 * `dictionaries`: the header fields the base parsed as Dictionaries (`;key`, `;sf`), for a caller
 * that needs one again (content-digest) without parsing it a second time; absent when none was.
 */
export type BaseResult = { ok: true; base: string; dictionaries?: ReadonlyMap<string, Dictionary> } | { ok: false; reason: string }

const FIELD_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/
const ASCII = /^[\x00-\x7f]*$/
const NEWLINE = /[\r\n]/
/** A component name whose sf-string form is just itself in quotes (the common case, serialized inline). */
const PLAIN_NAME = /^@?[a-z0-9!#$%&'*+.^_`|~-]+$/

/**
 * RFC 9421 §2.5: the signature base for `covered` (the Signature-Input member: components and
 * signature parameters). The last line is `"@signature-params": ` + the re-serialized inner list.
 */
export function buildSignatureBase(message: SignedMessage, covered: InnerList, options: BaseOptions = {}): BaseResult {
  const components = covered[0]
  if (components.length > MAX_COVERED_COMPONENTS) return fail(`more than ${MAX_COVERED_COMPONENTS} components`)
  try {
    const parsed = new ParsedMessage(message, options)
    let base = ''
    const seen = new Set<string>()
    for (const [name, params] of components) {
      if (typeof name !== 'string') return fail('a component identifier is not a string')
      const id = params.size === 0 ? name : componentKey(name, params)
      if (seen.has(id)) return fail(`component ${name} is listed twice`)
      seen.add(id)
      const value = name.charCodeAt(0) === 64 /* @ */ ? derivedValue(message, parsed, name, params) : fieldValue(parsed, name, params, options)
      if (typeof value !== 'string') return value
      if (NEWLINE.test(value)) return fail(`component ${name} contains a newline`)
      base += (params.size === 0 && PLAIN_NAME.test(name) ? `"${name}"` : serializeItem(name, params)) + ': ' + value + '\n'
    }
    base += '"@signature-params": ' + (plainInnerList(covered) ?? serializeInnerList(covered))
    if (!ASCII.test(base)) return fail('the signature base is not ASCII')
    const dictionaries = parsed.dictionaries()
    return dictionaries === undefined ? { ok: true, base } : { ok: true, base, dictionaries }
  } catch {
    return fail('a component cannot be serialized')
  }
}

/** An sf-string that needs no escaping: printable ASCII without `"` and `\`. */
const PLAIN_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/** Parameters of the common kinds (plain strings, integers, true); undefined for anything else. */
function plainParameters(params: Parameters): string | undefined {
  let out = ''
  for (const [key, value] of params) {
    if (value === true) out += ';' + key
    else if (typeof value === 'string' && PLAIN_STRING.test(value)) out += ';' + key + '="' + value + '"'
    else if (typeof value === 'number' && Number.isSafeInteger(value) && Math.abs(value) <= 999_999_999_999_999) out += ';' + key + '=' + String(value)
    else return undefined
  }
  return out
}

/**
 * The inner list as structured-headers' serializeInnerList writes it, for the shape every signature has
 * (string component identifiers; string, integer and true parameters) — a profile showed the generic
 * serializer as the largest single cost of a verification. undefined for any other shape: the caller
 * then uses the library. test/unit/fuzz/signature-params.test.ts holds the two equal.
 */
export function plainInnerList(list: InnerList): string | undefined {
  let out = '('
  const items = list[0]
  for (let i = 0; i < items.length; i++) {
    const [value, params] = items[i]!
    if (typeof value !== 'string' || !PLAIN_STRING.test(value)) return undefined
    const p = plainParameters(params)
    if (p === undefined) return undefined
    out += (i === 0 ? '"' : ' "') + value + '"' + p
  }
  const p = plainParameters(list[1])
  return p === undefined ? undefined : out + ')' + p
}

/**
 * One message's header fields and query, each read and parsed at most once however many covered
 * components name them (`"x";key=a`, `"x";key=b`, `"@query-param";name=…`): the cache lives for one
 * signature base, i.e. one request. A parse that fails is remembered as failed.
 */
class ParsedMessage {
  private fields?: Map<string, readonly string[] | undefined>
  private structured?: Map<string, Dictionary | List | Item | null>
  private query?: Map<string, string | null>

  constructor(
    private readonly message: SignedMessage,
    private readonly options: BaseOptions,
  ) {}

  /** Every instance of the field, unfolded and trimmed; undefined when absent. */
  field(name: string): readonly string[] | undefined {
    this.fields ??= new Map()
    if (this.fields.has(name)) return this.fields.get(name)
    const instances = this.message.field(name)
    const values = instances === undefined || instances.length === 0 ? undefined : instances.map((v) => v.replace(/\r?\n[ \t]+/g, ' ').trim())
    this.fields.set(name, values)
    return values
  }

  /** The combined field parsed as `type`; null when it does not parse. */
  structuredField(name: string, type: StructuredType): Dictionary | List | Item | null {
    this.structured ??= new Map()
    // Cached per (type, field): `;key` always reads a Dictionary, `;sf` the field's declared type.
    // A field name holds no space, so `list x` / `item x` never collide with a Dictionary's `x`.
    const slot = type === 'dictionary' ? name : `${type} ${name}`
    const cached = this.structured.get(slot)
    if (cached !== undefined) return cached
    const combined = (this.field(name) ?? []).join(', ')
    this.options.onParse?.(name)
    let value: Dictionary | List | Item | null
    try {
      value = type === 'dictionary' ? parseDictionary(combined) : type === 'list' ? parseList(combined) : parseItem(combined)
    } catch {
      value = null
    }
    this.structured.set(slot, value)
    return value
  }

  /** The fields successfully parsed as Dictionaries, or undefined when none was. */
  dictionaries(): ReadonlyMap<string, Dictionary> | undefined {
    if (this.structured === undefined) return undefined
    let found: Map<string, Dictionary> | undefined
    for (const [slot, value] of this.structured) if (value instanceof Map && !slot.includes(' ')) (found ??= new Map()).set(slot, value)
    return found
  }

  /** RFC 9421 §2.2.8: the re-encoded value of a query parameter named `wanted` (itself encoded); null when absent or repeated. */
  queryParam(wanted: string): string | null | undefined {
    if (this.query === undefined) {
      this.query = new Map()
      this.options.onParse?.('@query')
      const q = this.message.query
      for (const [name, value] of new URLSearchParams(q.startsWith('?') ? q.slice(1) : q)) {
        const key = formEncode(name)
        // A repeated name is remembered as null: the component is then an error.
        this.query.set(key, this.query.has(key) ? null : formEncode(value))
      }
    }
    return this.query.get(wanted)
  }
}

/** HTTP_SIGN / HTTP_VERIFY for hmac-sha256 (RFC 9421 §3.3.3): the 32-byte MAC of the base. */
export function hmacSha256(key: KeyObject | Uint8Array, base: string): Buffer {
  return createHmac('sha256', key).update(base, 'ascii').digest()
}

export interface SignatureEntry {
  label: string
  /** The Signature-Input member: covered components with the signature parameters. */
  covered: InnerList
  params: Parameters
  /** The matching Signature member's bytes, when it is a Byte Sequence. */
  signature?: Buffer
}

/**
 * Both fields parsed as Dictionaries (RFC 9421 §4). Members of Signature-Input that are not inner
 * lists are left out. undefined when either field is not a valid Dictionary.
 */
export function parseSignatureFields(signatureInput: string, signature: string): SignatureEntry[] | undefined {
  let inputs, values
  try {
    inputs = parseDictionary(signatureInput)
    values = parseDictionary(signature)
  } catch {
    return undefined
  }
  const entries: SignatureEntry[] = []
  for (const [label, member] of inputs) {
    if (!isInnerList(member)) continue
    const value = values.get(label)
    const bytes = value !== undefined && !isInnerList(value) && value[0] instanceof ArrayBuffer ? Buffer.from(value[0]) : undefined
    entries.push({ label, covered: member, params: member[1], signature: bytes })
  }
  return entries
}

/** A component identifier from its text: `@method`, `content-type`, or sf form `"@query-param";name="id"`. */
export function parseComponentId(text: string): Item {
  return text.startsWith('"') ? parseItem(text) : [text, new Map()]
}

/** The Signature-Input and Signature field values for one signature under `label`. */
export function signatureFieldValues(label: string, covered: InnerList, mac: Uint8Array): { signatureInput: string; signature: string } {
  return {
    signatureInput: serializeDictionary(new Map([[label, covered]])),
    signature: serializeDictionary(new Map([[label, [mac, new Map()] as Item]])),
  }
}

function derivedValue(message: SignedMessage, parsed: ParsedMessage, name: string, params: Parameters): string | BaseResult {
  if (name === '@query-param') {
    const wanted = params.get('name')
    if (params.size !== 1 || typeof wanted !== 'string') return fail('@query-param needs exactly one `name` parameter')
    const value = parsed.queryParam(wanted)
    return typeof value === 'string' ? value : fail(`query parameter ${wanted} is absent or repeated`)
  }
  if (params.size > 0) return fail(`${name} takes no parameters here`)
  switch (name) {
    case '@method':
      return message.method
    case '@authority':
      return message.authority === '' ? fail('the request has no authority') : message.authority
    case '@scheme':
      return message.scheme
    case '@target-uri':
      return `${message.scheme}://${message.authority}${message.path || '/'}${message.query}`
    case '@request-target':
      return message.target ?? (message.path || '/') + message.query
    case '@path':
      return message.path || '/'
    case '@query':
      return message.query || '?'
    case '@status':
      return fail('@status belongs to responses')
    default:
      return fail(`unknown derived component ${name}`)
  }
}

function fieldValue(parsed: ParsedMessage, name: string, params: Parameters, options: BaseOptions): string | BaseResult {
  if (!FIELD_NAME.test(name)) return fail(`bad field name ${name}`)
  for (const [key, value] of params) {
    if (key === 'key' ? typeof value !== 'string' : (key !== 'sf' && key !== 'bs') || value !== true) {
      return fail(`unsupported parameter ${key} on ${name}`)
    }
  }
  if (params.has('bs') && (params.has('sf') || params.has('key'))) return fail(`bs cannot combine with sf or key on ${name}`)
  const values = parsed.field(name)
  if (values === undefined) return fail(`field ${name} is absent`)
  if (params.has('bs')) return serializeList(values.map((v) => [Buffer.from(v, 'latin1'), new Map()] as Item))
  const key = params.get('key')
  if (typeof key === 'string') {
    // §2.1.2: `key` reads the field as a Dictionary, whatever `sf` would say.
    const dictionary = parsed.structuredField(name, 'dictionary')
    if (!(dictionary instanceof Map)) return fail(`${name} is not a dictionary`)
    const member = dictionary.get(key)
    if (member === undefined) return fail(`${name} has no member ${key}`)
    return isInnerList(member) ? serializeInnerList(member) : serializeItem(member)
  }
  if (params.has('sf')) {
    const type = options.structuredFields?.[name] ?? KNOWN_STRUCTURED_FIELDS[name]
    if (type === undefined) return fail(`${name} is not a known structured field`)
    const value = parsed.structuredField(name, type)
    if (value === null) return fail(`${name} is not a valid structured field`)
    if (type === 'dictionary') return serializeDictionary(value as Dictionary)
    if (type === 'list') return serializeList(value as List)
    return serializeItem(value as Item)
  }
  return values.length === 1 ? values[0]! : values.join(', ')
}

/** Percent-encode every byte outside ALPHA / DIGIT / `*-._`, as the RFC's examples do (space → %20). */
export function formEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

/** Identity of a component regardless of parameter order (RFC 9421 §2: `;a;b` equals `;b;a`). */
function componentKey(name: string, params: Parameters): string {
  if (params.size === 0) return JSON.stringify(name)
  const parts = [...params].map(([k, v]) => serializeParameters(new Map([[k, v]]))).sort()
  return JSON.stringify(name) + parts.join('')
}

function fail(reason: string): BaseResult {
  return { ok: false, reason }
}
