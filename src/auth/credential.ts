// Fingerprints and constant-time comparison: the one place credentials are hashed or compared.
// Never returns or logs the credential itself.
import { hash, timingSafeEqual } from 'node:crypto'

export function sha256(data: string | Buffer): Buffer {
  // The one-shot form: no Hash object per call (a bearer token or API key is hashed on every request).
  return hash('sha256', data, 'buffer')
}

/** `token:` + 6 hex of SHA-256 — the form audit lines and metrics use for a presented credential. */
export function tokenFingerprint(credential: string): string {
  return keyedFingerprint(digestKey(credential))
}

/**
 * A presented bearer token's or API key's SHA-256 as a latin1 string (one char per byte): the key of the
 * credential tables, made without a Buffer and its backing store (a bearer request hashes once).
 */
export function digestKey(credential: string): string {
  return hash('sha256', credential, 'binary') // latin1
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

/** tokenFingerprint of a credential whose digestKey is at hand (one hash serves lookup and fingerprint). */
export function keyedFingerprint(key: string): string {
  return 'token:' + HEX[key.charCodeAt(0)]! + HEX[key.charCodeAt(1)]! + HEX[key.charCodeAt(2)]!
}

/** `key:` + 6 hex of SHA-256 of a key id or signing key. */
export function keyFingerprint(keyIdOrKey: string): string {
  return 'key:' + sha256(keyIdOrKey).toString('hex').slice(0, 6)
}

/** `sha256:` + 64 hex: the form a config may store instead of the secret. */
export function fullFingerprint(credential: string): string {
  return 'sha256:' + sha256(credential).toString('hex')
}

/** Constant-time equality of two equal-length digests; false (not a throw) for any length mismatch. */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
