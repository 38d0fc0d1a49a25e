// Client side of DESIGN §4.4: Signature-Input, Signature and Content-Digest for one request.
// Pure; never logs or returns the secret. Bodies must be in memory (string or bytes).
import { randomBytes } from 'node:crypto'
import type { InnerList, Item, Parameters } from 'structured-headers'
import { computeContentDigest, type DigestAlgorithm } from '../auth/content-digest.js'
import { KEY_ID_PATTERN, REQUIRED_COMPONENTS } from '../auth/rfc9421.js'
import { buildSignatureBase, hmacSha256, parseComponentId, signatureFieldValues, type SignedMessage } from '../auth/signature-base.js'

export interface Rfc9421Credentials {
  keyId: string
  /** The key; a string is used as its UTF-8 bytes (a hex key, as `derive-key` prints, is not decoded). */
  secret: string | Uint8Array
  /** Default: 16 random bytes, base64url. Must be unique per key within the gateway's window. */
  nonce?: string
  /** Unix seconds; default now. */
  created?: number
  /** Unix seconds after which the gateway refuses the signature. */
  expires?: number
  /**
   * Components to cover beyond the required `@method @authority @path @query` (and `content-digest`,
   * added when there is a body): header names (`content-type`) or identifiers (`"@query-param";name="id"`).
   */
  components?: readonly string[]
  /** Signature label; default `sig1`. */
  label?: string
  /** Add `alg="hmac-sha256"` to the parameters (the gateway accepts both). Default false. */
  alg?: boolean
  /** Default `sha-256`. */
  digestAlgorithm?: DigestAlgorithm
}

export type HeaderInput = Record<string, string | readonly string[] | undefined> | Iterable<readonly [string, string]>

export interface Rfc9421SignOptions extends Rfc9421Credentials {
  method: string
  url: string | URL
  /** The request's other headers, for covered header fields and a custom Host. */
  headers?: HeaderInput
  body?: string | Uint8Array
}

/** Lower-case names, ready to add to the request. */
export interface Rfc9421Headers {
  'signature-input': string
  signature: string
  'content-digest'?: string
}

/** What the dispatcher knows of a request at dispatch time. */
export interface RequestParts {
  method: string
  scheme: string
  authority: string
  path: string
  query: string
  headers: ReadonlyArray<readonly [string, string]>
  body?: string | Uint8Array
}

export function signRfc9421(options: Rfc9421SignOptions): Rfc9421Headers {
  const url = new URL(options.url)
  const headers = headerPairs(options.headers)
  const host = headers.find(([k]) => k.toLowerCase() === 'host')?.[1]
  return signRequestParts(options, {
    method: options.method,
    scheme: url.protocol.slice(0, -1),
    authority: (host ?? url.host).toLowerCase(),
    path: url.pathname,
    query: url.search,
    headers,
    body: options.body,
  })
}

export function signRequestParts(credentials: Rfc9421Credentials, parts: RequestParts): Rfc9421Headers {
  if (!KEY_ID_PATTERN.test(credentials.keyId)) throw new TypeError('keyId must be 1 to 256 printable ASCII characters without spaces')
  const body = typeof parts.body === 'string' ? Buffer.from(parts.body, 'utf8') : parts.body
  const digest = body !== undefined && body.length > 0 ? computeContentDigest(body, credentials.digestAlgorithm) : undefined

  const names: string[] = [...REQUIRED_COMPONENTS, ...(digest !== undefined ? ['content-digest'] : []), ...(credentials.components ?? [])]
  const components: Item[] = []
  for (const item of names.map(parseComponentId)) {
    if (!components.some((c) => c[0] === item[0] && sameParams(c[1], item[1]))) components.push(item)
  }
  const params: Parameters = new Map()
  params.set('created', credentials.created ?? Math.floor(Date.now() / 1000))
  if (credentials.expires !== undefined) params.set('expires', credentials.expires)
  params.set('keyid', credentials.keyId)
  params.set('nonce', credentials.nonce ?? randomBytes(16).toString('base64url'))
  if (credentials.alg === true) params.set('alg', 'hmac-sha256')
  const covered: InnerList = [components, params]

  const message: SignedMessage = {
    method: parts.method,
    scheme: parts.scheme,
    authority: parts.authority,
    path: parts.path,
    query: parts.query,
    field: (name) => {
      if (name === 'content-digest' && digest !== undefined) return [digest]
      const values = parts.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v)
      return values.length > 0 ? values : undefined
    },
  }
  const base = buildSignatureBase(message, covered)
  if (!base.ok) throw new Error(`cannot sign this request: ${base.reason}`)
  const secret = typeof credentials.secret === 'string' ? Buffer.from(credentials.secret, 'utf8') : credentials.secret
  const fields = signatureFieldValues(credentials.label ?? 'sig1', covered, hmacSha256(secret, base.base))
  return {
    'signature-input': fields.signatureInput,
    signature: fields.signature,
    ...(digest !== undefined ? { 'content-digest': digest } : {}),
  }
}

/** Any of the usual header shapes as [name, value] pairs, repeats kept in order. */
export function headerPairs(headers: HeaderInput | undefined): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  if (headers === undefined) return pairs
  const entries = Symbol.iterator in headers ? (headers as Iterable<readonly [string, string]>) : Object.entries(headers)
  for (const [name, value] of entries) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, String(v)])
  }
  return pairs
}

function sameParams(a: Parameters, b: Parameters): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)
}
