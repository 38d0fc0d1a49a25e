// RFC 9530 Content-Digest: compute it for a body and check a received one against the exact bytes.
// Only sha-256 and sha-512 are accepted; anything else is refused, never ignored. Never throws on input.
import { hash } from 'node:crypto'
import { serializeDictionary, isInnerList, type Dictionary } from 'structured-headers'
import { parseDictionary } from './sf-dictionary.js'
import { digestsEqual } from './credential.js'

export type DigestAlgorithm = 'sha-256' | 'sha-512'

const HASHES: Record<DigestAlgorithm, string> = { 'sha-256': 'sha256', 'sha-512': 'sha512' }

export function isDigestAlgorithm(name: string): name is DigestAlgorithm {
  return name === 'sha-256' || name === 'sha-512'
}

/** The Content-Digest field value for `body`, e.g. `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`. */
export function computeContentDigest(body: Uint8Array | string, algorithm: DigestAlgorithm = 'sha-256'): string {
  const digest = hash(HASHES[algorithm], body, 'buffer') as unknown as Buffer<ArrayBuffer>
  return serializeDictionary(new Map([[algorithm, [digest, new Map()]]]))
}

/**
 * `ok` when every member of the field is a supported algorithm whose digest equals the body's;
 * `unsupported` when any member names another algorithm; `malformed` when the field is not a
 * Dictionary of Byte Sequences (or is empty); `mismatch` otherwise.
 */
export type DigestCheck = 'ok' | 'mismatch' | 'unsupported' | 'malformed'

/** `field`: the field's text, or the Dictionary already parsed from it (so it is parsed once per request). */
export function verifyContentDigest(field: string | Dictionary, body: Uint8Array): DigestCheck {
  let members: Dictionary
  try {
    members = typeof field === 'string' ? parseDictionary(field) : field
  } catch {
    return 'malformed'
  }
  if (members.size === 0) return 'malformed'
  const checks: Array<[DigestAlgorithm, Buffer]> = []
  for (const [key, member] of members) {
    if (isInnerList(member) || !(member[0] instanceof ArrayBuffer)) return 'malformed'
    if (!isDigestAlgorithm(key)) return 'unsupported'
    checks.push([key, Buffer.from(member[0])])
  }
  let ok = true
  for (const [algorithm, claimed] of checks) {
    // The one-shot form: no Hash object per request.
    const actual = hash(HASHES[algorithm], body, 'buffer') as unknown as Buffer
    ok = digestsEqual(actual, claimed) && ok
  }
  return ok ? 'ok' : 'mismatch'
}
