// did:key for Ed25519 and P-256 (compressed point): parse to a node:crypto public key, make one from a
// key, and sign / verify the raw signatures UCAN carries (Ed25519; P-256 as r‖s, 64 bytes, low-S).
// Never throws on input; never exposes private key material.
import { createPrivateKey, createPublicKey, ECDH, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { base58btc } from 'multiformats/bases/base58'
import { LRUCache } from 'lru-cache'

export type KeyAlgorithm = 'Ed25519' | 'P-256'

export interface DidKey {
  did: string
  algorithm: KeyAlgorithm
  key: KeyObject
}

const ED25519_PREFIX = [0xed, 0x01]
const P256_PREFIX = [0x80, 0x24]
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex')
const P256_SPKI = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex')
/** The P-256 group order and half of it: a signature with s above the half is the malleated twin. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
const P256_HALF_N = P256_N >> 1n

const DID_KEY = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/

/**
 * Importing a key costs more than verifying a signature with it; a DID names its key completely, so
 * parsed keys are kept (bounded, least recently used first out). Failures are not kept.
 */
const parsed = new LRUCache<string, DidKey>({ max: 10_000 })

/** Parse a did:key naming an Ed25519 or P-256 key; undefined for anything else. */
export function parseDidKey(did: string): DidKey | undefined {
  if (typeof did !== 'string' || !DID_KEY.test(did)) return undefined
  const known = parsed.get(did)
  if (known) return known
  const made = importDidKey(did)
  if (made) parsed.set(did, made)
  return made
}

/** The algorithm a did:key names, from its multicodec prefix alone (no key import: cheap). */
export function didKeyAlgorithm(did: string): KeyAlgorithm | undefined {
  const raw = multikey(did)
  if (!raw) return undefined
  if (raw.length === 34 && raw[0] === ED25519_PREFIX[0] && raw[1] === ED25519_PREFIX[1]) return 'Ed25519'
  if (raw.length === 35 && raw[0] === P256_PREFIX[0] && raw[1] === P256_PREFIX[1] && (raw[2] === 2 || raw[2] === 3)) return 'P-256'
  return undefined
}

function multikey(did: string): Uint8Array | undefined {
  if (typeof did !== 'string' || !DID_KEY.test(did)) return undefined
  try {
    return base58btc.decode(did.slice('did:key:'.length))
  } catch {
    return undefined
  }
}

function importDidKey(did: string): DidKey | undefined {
  const raw = multikey(did)
  if (!raw) return undefined
  try {
    if (raw.length === 34 && raw[0] === ED25519_PREFIX[0] && raw[1] === ED25519_PREFIX[1]) {
      const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw.subarray(2)]), format: 'der', type: 'spki' })
      return { did, algorithm: 'Ed25519', key }
    }
    if (raw.length === 35 && raw[0] === P256_PREFIX[0] && raw[1] === P256_PREFIX[1] && (raw[2] === 2 || raw[2] === 3)) {
      const point = ECDH.convertKey(raw.subarray(2), 'prime256v1', undefined, undefined, 'uncompressed') as Buffer
      const key = createPublicKey({ key: Buffer.concat([P256_SPKI, point]), format: 'der', type: 'spki' })
      return { did, algorithm: 'P-256', key }
    }
  } catch {
    return undefined
  }
  return undefined
}

/** The did:key of a public (or private) Ed25519 or P-256 key. */
export function didOf(key: KeyObject): { did: string; algorithm: KeyAlgorithm } {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const algorithm = keyAlgorithm(pub)
  const spki = pub.export({ format: 'der', type: 'spki' })
  let raw: Buffer
  if (algorithm === 'Ed25519') raw = Buffer.concat([Buffer.from(ED25519_PREFIX), spki.subarray(spki.length - 32)])
  else {
    const point = spki.subarray(spki.length - 65)
    const compressed = ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'compressed') as Buffer
    raw = Buffer.concat([Buffer.from(P256_PREFIX), compressed])
  }
  return { did: 'did:key:' + base58btc.encode(raw), algorithm }
}

export function keyAlgorithm(key: KeyObject): KeyAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'Ed25519'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'P-256'
  throw new Error('only Ed25519 and P-256 keys can sign UCANs')
}

/** A PEM private key (PKCS#8 or SEC1) as a KeyObject, refusing other algorithms. */
export function loadPrivateKey(pem: string | Buffer): KeyObject {
  const key = createPrivateKey(pem)
  keyAlgorithm(key)
  return key
}

export function signRaw(key: KeyObject, data: Uint8Array): Uint8Array {
  if (keyAlgorithm(key) === 'Ed25519') return cryptoSign(null, data, key)
  const sig = cryptoSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })
  const s = BigInt('0x' + sig.subarray(32).toString('hex'))
  if (s <= P256_HALF_N) return sig
  const low = (P256_N - s).toString(16).padStart(64, '0')
  return Buffer.concat([sig.subarray(0, 32), Buffer.from(low, 'hex')])
}

export function verifyRaw(k: DidKey, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false
  try {
    if (k.algorithm === 'Ed25519') return cryptoVerify(null, data, k.key, signature)
    const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'))
    if (s === 0n || s > P256_HALF_N) return false
    return cryptoVerify('sha256', data, { key: k.key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}
