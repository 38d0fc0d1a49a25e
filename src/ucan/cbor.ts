// Strict DAG-CBOR for UCAN: bounds checked on the raw bytes before any library sees them, then
// decoded and re-encoded; bytes that do not re-encode identically are refused (CIDs hash the bytes,
// so two encodings of one value must never both be accepted). Never throws an unexpected error type.
import * as dagCbor from '@ipld/dag-cbor'

/** The bound every UCAN decode runs under: a token is at most the container's 64 KiB. */
export interface CborLimits {
  maxBytes: number
  maxDepth: number
  maxItems: number
}

export const UCAN_CBOR_LIMITS: CborLimits = { maxBytes: 64 * 1024, maxDepth: 32, maxItems: 8192 }

export class CborError extends Error {
  override name = 'CborError'
}

const CID_TAG = 42

/**
 * Walks the item headers without building anything: refuses indefinite lengths, tags other than 42,
 * simple values other than false/true/null, floats other than float64, integers outside ±(2^53-1),
 * lengths past the end, and more depth or items than allowed. Iterative, so the depth bound is exact.
 */
export function scanCbor(bytes: Uint8Array, limits: CborLimits = UCAN_CBOR_LIMITS): void {
  if (bytes.length > limits.maxBytes) throw new CborError('too large')
  let pos = 0
  let items = 0
  // Each frame: how many child items are still to read at that depth.
  const pending: number[] = [1]
  while (pending.length > 0) {
    if (pending[pending.length - 1] === 0) {
      pending.pop()
      continue
    }
    pending[pending.length - 1]!--
    if (++items > limits.maxItems) throw new CborError('too many items')
    if (pos >= bytes.length) throw new CborError('truncated')
    const initial = bytes[pos++]!
    const major = initial >> 5
    const info = initial & 0x1f
    let arg: number
    if (info < 24) arg = info
    else if (info <= 27) {
      const size = 1 << (info - 24)
      if (pos + size > bytes.length) throw new CborError('truncated')
      if (major === 7) {
        if (info !== 27) throw new CborError('only float64 and simple values false/true/null are DAG-CBOR')
        pos += 8
        continue
      }
      let v = 0
      for (let i = 0; i < size; i++) v = v * 256 + bytes[pos + i]!
      pos += size
      if (v > Number.MAX_SAFE_INTEGER) throw new CborError('integer or length out of range')
      arg = v
    } else throw new CborError('indefinite length or reserved value')
    switch (major) {
      case 0:
      case 1:
        break
      case 2:
      case 3:
        if (arg > bytes.length - pos) throw new CborError('truncated')
        pos += arg
        break
      case 4:
      case 5: {
        const children = major === 4 ? arg : arg * 2
        if (children > limits.maxItems) throw new CborError('too many items')
        if (children > 0) {
          if (pending.length > limits.maxDepth) throw new CborError('too deep')
          pending.push(children)
        }
        break
      }
      case 6:
        if (arg !== CID_TAG) throw new CborError('only tag 42 (CID) is DAG-CBOR')
        if (pending.length > limits.maxDepth) throw new CborError('too deep')
        pending.push(1)
        break
      default:
        if (arg !== 20 && arg !== 21 && arg !== 22) throw new CborError('only simple values false/true/null are DAG-CBOR')
    }
  }
  if (pos !== bytes.length) throw new CborError('trailing bytes')
}

/** Decode canonical DAG-CBOR within limits, or throw CborError. */
export function decodeStrict(bytes: Uint8Array, limits: CborLimits = UCAN_CBOR_LIMITS): unknown {
  scanCbor(bytes, limits)
  let value: unknown
  let again: Uint8Array
  try {
    value = dagCbor.decode(bytes)
    again = dagCbor.encode(value)
  } catch {
    throw new CborError('not DAG-CBOR')
  }
  if (!bytesEqual(again, bytes)) throw new CborError('not canonical DAG-CBOR')
  return value
}

export function encode(value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array
}

/** A plain decoded map (never an array, bytes, CID or null). */
export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) === Object.prototype
}
