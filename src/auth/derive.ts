// Per-worker keys from a master secret (DESIGN §4.4 `derive`), shared by the gateway, the CLI and join.
// Pure: never logs or stores the master or a derived key.
import { hkdfSync } from 'node:crypto'

export const DERIVE_SALT = 'portcullis'
export const DERIVE_INFO_PREFIX = 'worker-key:'
/** HKDF's `info` is bounded (1024 bytes in OpenSSL); a key id longer than this cannot be derived. */
export const MAX_DERIVED_KEY_ID_BYTES = 1024 - DERIVE_INFO_PREFIX.length

/**
 * The key for `keyId`: lowercase hex (64 chars) of HKDF-SHA256(ikm = master as UTF-8,
 * salt = "portcullis", info = "worker-key:" + keyId, 32 bytes). Used, like every secret,
 * as the UTF-8 bytes of that hex text.
 */
export function deriveKey(master: string, keyId: string): string {
  const info = Buffer.from(DERIVE_INFO_PREFIX + keyId, 'utf8')
  if (info.length > 1024) throw new RangeError('key id too long to derive a key for')
  const okm = hkdfSync('sha256', Buffer.from(master, 'utf8'), Buffer.from(DERIVE_SALT, 'utf8'), info, 32)
  return Buffer.from(okm).toString('hex')
}
