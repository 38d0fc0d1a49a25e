// HMAC-SHA-256 (RFC 2104) for the verify paths (rfc9421, worker-v1): the key's two padded blocks are
// made once, and each MAC is two one-shot crypto.hash() calls over them. Timed inside the running gateway
// under load, interleaved call by call with createHmac on the same requests, createHmac took 8–18 µs a
// call and this 6–11 µs (docs/performance.md): createHmac builds a Hash object and initializes an
// HMAC context (three digest contexts and their lookups) per call. A microbenchmark on one warm thread
// shows the opposite (3.0 against 3.8 µs), which is why the figure that counts is the in-gateway one.
// OpenSSL still computes every SHA-256; this file only arranges RFC 2104's two hashes. The property test
// holds it equal to createHmac for every key length and message; comparing a MAC stays constant-time
// (digestsEqual). The per-call buffers (from Node's shared pool) are zeroed where they held a pad or the
// inner hash, once the hash has read them.
import { hash } from 'node:crypto'

/** SHA-256's block size in bytes. */
const BLOCK = 64
const DIGEST = 32

/** A key ready for hmacSha256With: (K ⊕ ipad) and (K ⊕ opad), K hashed first when longer than a block. */
export interface HmacKey {
  readonly inner: Buffer
  readonly outer: Buffer
}

export function hmacKey(key: string | Uint8Array): HmacKey {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  const k = bytes.length > BLOCK ? sha256(bytes) : bytes
  const inner = Buffer.alloc(BLOCK, 0x36)
  const outer = Buffer.alloc(BLOCK, 0x5c)
  for (let i = 0; i < k.length; i++) {
    inner[i] = inner[i]! ^ k[i]!
    outer[i] = outer[i]! ^ k[i]!
  }
  return { inner, outer }
}

/** HMAC-SHA-256 of `message` (its `encoding` bytes) under `key`: 32 bytes. */
export function hmacSha256With(key: HmacKey, message: string, encoding: 'latin1' | 'utf8'): Buffer {
  const length = encoding === 'latin1' ? message.length : Buffer.byteLength(message, 'utf8')
  const first = Buffer.allocUnsafe(BLOCK + length)
  key.inner.copy(first, 0)
  first.write(message, BLOCK, encoding)
  const innerHash = sha256(first)
  first.fill(0, 0, BLOCK)
  const second = Buffer.allocUnsafe(BLOCK + DIGEST)
  key.outer.copy(second, 0)
  innerHash.copy(second, BLOCK)
  innerHash.fill(0)
  const mac = sha256(second)
  second.fill(0)
  return mac
}

function sha256(data: Uint8Array): Buffer {
  return hash('sha256', data, 'buffer') as unknown as Buffer
}
