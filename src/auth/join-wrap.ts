// DESIGN §4.7 key wrapping, shared by the gateway (wrap) and the worker (unwrap): X25519 key
// agreement, HKDF-SHA256, AES-256-GCM. Pure functions; never logs a key, a secret or a plaintext.
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'

export const JOIN_INFO_PREFIX = 'portcullis-join:'
export const JOIN_NONCE_BYTES = 16
export const JOIN_IV_BYTES = 12
export const JOIN_TAG_BYTES = 16
/** Raw X25519 public keys are 32 bytes: 43 base64url characters without padding. */
const RAW_X25519_B64URL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/

/** The 200 answer to a join request that carried a public key (all binary values base64url, no padding). */
export interface WrappedJoinAnswer {
  keyid: string
  serverPublicKey: string
  nonce: string
  wrappedKey: string
}

export function generateX25519(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicKey: rawPublicKey(publicKey) }
}

/** The raw 32-byte public key, base64url without padding (JWK `x` is exactly that). */
export function rawPublicKey(key: KeyObject): string {
  return key.export({ format: 'jwk' }).x as string
}

/** A raw X25519 public key given as base64url (canonical, no padding), or undefined if it is not one. */
export function importRawX25519(b64url: string): KeyObject | undefined {
  if (!RAW_X25519_B64URL.test(b64url)) return undefined
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** AES key = HKDF-SHA256(ikm = X25519 shared secret, salt = nonce, info = "portcullis-join:" + keyid, 32 bytes). */
function wrappingKey(privateKey: KeyObject, publicKey: KeyObject, nonce: Buffer, keyid: string): Buffer {
  // OpenSSL refuses a low-order peer key (all-zero shared secret) by throwing here.
  const shared = diffieHellman({ privateKey, publicKey })
  return Buffer.from(hkdfSync('sha256', shared, nonce, Buffer.from(JOIN_INFO_PREFIX + keyid, 'utf8'), 32))
}

/** Gateway side: wrap `workerKey` for the holder of `clientPublicKey`; throws on a low-order key. */
export function wrapWorkerKey(keyid: string, workerKey: string, clientPublicKey: KeyObject): WrappedJoinAnswer {
  const server = generateKeyPairSync('x25519')
  const nonce = randomBytes(JOIN_NONCE_BYTES)
  const key = wrappingKey(server.privateKey, clientPublicKey, nonce, keyid)
  const iv = randomBytes(JOIN_IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(keyid, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(workerKey, 'utf8'), cipher.final()])
  return {
    keyid,
    serverPublicKey: rawPublicKey(server.publicKey),
    nonce: nonce.toString('base64url'),
    wrappedKey: Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64url'),
  }
}

/** Worker side: the key inside a join answer; throws if anything was altered or is for another keyid. */
export function unwrapWorkerKey(answer: WrappedJoinAnswer, keyid: string, privateKey: KeyObject): string {
  if (answer.keyid !== keyid) throw new Error('join answer is for another key id')
  const serverKey = importRawX25519(answer.serverPublicKey)
  if (!serverKey) throw new Error('join answer has no valid serverPublicKey')
  const nonce = Buffer.from(answer.nonce, 'base64url')
  const wrapped = Buffer.from(answer.wrappedKey, 'base64url')
  if (nonce.length !== JOIN_NONCE_BYTES || wrapped.length <= JOIN_IV_BYTES + JOIN_TAG_BYTES) throw new Error('join answer is malformed')
  const key = wrappingKey(privateKey, serverKey, nonce, keyid)
  const decipher = createDecipheriv('aes-256-gcm', key, wrapped.subarray(0, JOIN_IV_BYTES))
  decipher.setAAD(Buffer.from(keyid, 'utf8'))
  decipher.setAuthTag(wrapped.subarray(wrapped.length - JOIN_TAG_BYTES))
  return Buffer.concat([decipher.update(wrapped.subarray(JOIN_IV_BYTES, wrapped.length - JOIN_TAG_BYTES)), decipher.final()]).toString('utf8')
}
