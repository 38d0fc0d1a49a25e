// UCAN container 0.1: a header byte, then base64 (std padded or url unpadded) and/or gzip around
// `{"ctn-v1": [token bytes...]}`. Decoding is bounded (64 KiB after gunzip, strict base64, strict CBOR)
// and only ever throws ContainerError. Knows nothing of what the tokens say.
import { gunzipSync, gzipSync } from 'node:zlib'
import { CborError, decodeStrict, encode, isBytes, isMap, UCAN_CBOR_LIMITS } from './cbor.js'

export const CONTAINER_MAX_BYTES = 64 * 1024
/** Most tokens a container may hold (an invocation and its chain, plus a few unrelated ones). */
export const CONTAINER_MAX_TOKENS = 32

export class ContainerError extends Error {
  override name = 'ContainerError'
}

type Encoding = 'raw' | 'std' | 'url'
const HEADERS: Record<string, { encoding: Encoding; gzip: boolean }> = {
  '@': { encoding: 'raw', gzip: false },
  B: { encoding: 'std', gzip: false },
  C: { encoding: 'url', gzip: false },
  M: { encoding: 'raw', gzip: true },
  O: { encoding: 'std', gzip: true },
  P: { encoding: 'url', gzip: true },
}

const STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const URL_SAFE = /^[A-Za-z0-9_-]*$/

/** A container as text (what `Authorization: Bearer` carries): header B, C, O or P only. */
export function decodeContainerText(text: string): Uint8Array[] {
  const h = HEADERS[text[0] ?? '']
  if (!h || h.encoding === 'raw') throw new ContainerError('unknown container header')
  return decodeBody(h, text.slice(1))
}

/** A container as bytes: any header, including the raw-bytes forms `@` and `M`. */
export function decodeContainerBytes(bytes: Uint8Array): Uint8Array[] {
  const h = HEADERS[String.fromCharCode(bytes[0] ?? 0)]
  if (!h) throw new ContainerError('unknown container header')
  if (h.encoding === 'raw') return decodeBody(h, Buffer.from(bytes.subarray(1)))
  return decodeBody(h, Buffer.from(bytes.subarray(1)).toString('latin1'))
}

function decodeBody(h: { encoding: Encoding; gzip: boolean }, body: string | Buffer): Uint8Array[] {
  let bytes: Buffer
  if (typeof body === 'string') {
    // Base64 text is 4/3 of its bytes; compressed input past the bound can only inflate further.
    if (body.length > Math.ceil((CONTAINER_MAX_BYTES * 4) / 3) + 4) throw new ContainerError('container too large')
    const ok = h.encoding === 'std' ? STD.test(body) && body.length % 4 === 0 : URL_SAFE.test(body) && body.length % 4 !== 1
    if (!ok) throw new ContainerError('bad base64')
    bytes = Buffer.from(body, h.encoding === 'std' ? 'base64' : 'base64url')
    // Node ignores stray bits in the last character: re-encode so one container has one spelling.
    if (bytes.toString(h.encoding === 'std' ? 'base64' : 'base64url') !== body) throw new ContainerError('non-canonical base64')
  } else bytes = body
  if (h.gzip) bytes = gunzipBounded(bytes)
  if (bytes.length > CONTAINER_MAX_BYTES) throw new ContainerError('container too large')
  let doc: unknown
  try {
    doc = decodeStrict(bytes, { ...UCAN_CBOR_LIMITS, maxBytes: CONTAINER_MAX_BYTES })
  } catch (err) {
    if (err instanceof CborError) throw new ContainerError(`container: ${err.message}`)
    throw err
  }
  if (!isMap(doc)) throw new ContainerError('container is not a map')
  const keys = Object.keys(doc)
  if (keys.length !== 1 || keys[0] !== 'ctn-v1') throw new ContainerError('container must hold exactly the key ctn-v1')
  const tokens = doc['ctn-v1']
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.length > CONTAINER_MAX_TOKENS || !tokens.every(isBytes)) {
    throw new ContainerError('ctn-v1 must be a list of 1 to 32 tokens (bytes)')
  }
  return tokens
}

function gunzipBounded(bytes: Buffer): Buffer {
  try {
    // maxOutputLength makes zlib stop (with an error) one byte past the bound: a gzip bomb costs 64 KiB.
    return gunzipSync(bytes, { maxOutputLength: CONTAINER_MAX_BYTES + 1 })
  } catch {
    throw new ContainerError('bad gzip or container too large')
  }
}

export interface ContainerOptions {
  /** B (default): base64 std padded; C: base64url; O / P: the same, gzipped. */
  header?: 'B' | 'C' | 'O' | 'P'
}

/** The text form of a container holding `tokens`, deduplicated and ordered bytewise as the spec requires. */
export function encodeContainer(tokens: readonly Uint8Array[], options: ContainerOptions = {}): string {
  const header = options.header ?? 'B'
  const unique = new Map<string, Uint8Array>()
  for (const t of tokens) unique.set(Buffer.from(t).toString('hex'), t)
  const sorted = [...unique.values()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  let bytes = Buffer.from(encode({ 'ctn-v1': sorted }))
  if (bytes.length > CONTAINER_MAX_BYTES) throw new ContainerError('container too large (64 KiB)')
  if (header === 'O' || header === 'P') bytes = gzipSync(bytes)
  return header + bytes.toString(header === 'B' || header === 'O' ? 'base64' : 'base64url')
}
